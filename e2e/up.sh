#!/usr/bin/env bash
# The main job: one command, a working fleet on this machine.
#
#   bash e2e/up.sh [--tasks N] [--model qwen|sim|smollm2|vllm] [--corpus demo|postgres|python] [--namespace NS]
#                  [--scenario burst]
#   bash e2e/up.sh down          # stops the demo's processes and the cluster
#
# Builds (once) and starts the local control plane with its real node (a kubelet and containerd in a
# private network namespace) beside simulated GPU nodes, then hands over to the Python driver
# (e2e/demo/driver.py). With --model sim (the default) every pod runs on the real node
# (e2e/demo/onnode.py): the images (e2e/cluster/image.sh, e2e/cluster/node/) imported into its containerd, the CRDs,
# the operator from the chart (helm install), a Milvus pod, examples/agentfleet.yaml with in-cluster
# endpoints (the AgentFleet's own Redis, task API and workers, the ingestion Job, the replicas as pods
# of the CPU engine image), a Prometheus in the node's network namespace discovering the pods, agent
# tasks through the task API's Service, and a report (--scenario burst: a burst of tasks, the
# autoscaler's decisions as they happen, and a PNG). --model qwen|smollm2 serve a GGUF from
# llama-server pods (the llama engine image, e2e/cluster/node/engine-llama.Containerfile), --corpus
# postgres|python give the ingestion Job the corpus as a read-only volume. Everything stays
# running; `bash e2e/up.sh down` removes it. Options may also come from the environment:
# AGENTFLEET_DEMO_TASKS, AGENTFLEET_DEMO_MODEL, AGENTFLEET_DEMO_CORPUS, AGENTFLEET_NAMESPACE,
# AGENTFLEET_DEMO_SCENARIO.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/python-env.sh
source e2e/python-env.sh
agentfleet_python_env
export AGENTFLEET_PYTHON="$PY"

if [[ "${1:-}" == "down" ]]; then
  shift
  if bash e2e/cluster/cluster.sh status >/dev/null 2>&1 || [[ -d "${AGENTFLEET_CLUSTER_DIR:-/tmp/agentfleet-cluster}/demo" ]]; then
    "$PY" -m e2e.demo down --state-dir "${AGENTFLEET_CLUSTER_DIR:-/tmp/agentfleet-cluster}" "$@"
  fi
  exec bash e2e/cluster/cluster.sh down
fi

bash e2e/cluster/cluster.sh up
# --model qwen: the driver builds llama-server (bash e2e/cluster/llama-server.sh) and fetches the GGUF
# (python -m agentfleet_runtime.model.files) once into ~/.cache/agentfleet (e2e/harness/llama_server.py).
exec "$PY" -m e2e.demo up "$@"
