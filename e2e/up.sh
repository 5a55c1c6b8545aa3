#!/usr/bin/env bash
# The main job on the embedded defaults: builds (once) and starts a real local control plane with
# simulated GPU nodes, installs the agentfleet CRDs, applies the examples and shows them.
# Leaves the cluster running; `bash e2e/cluster.sh down` stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=e2e/python-env.sh
source e2e/python-env.sh
agentfleet_python_env
export AGENTFLEET_PYTHON="$PY"

NS="${AGENTFLEET_NAMESPACE:-agentfleet-demo}"

bash e2e/cluster.sh up
eval "$(bash e2e/cluster.sh env)"

echo "== CRDs"
kubectl apply --server-side --field-manager=agentfleet -f crds/
kubectl wait --for=condition=Established --timeout=60s \
  crd/modelreplicasets.agentfleet.io crd/vectorindexes.agentfleet.io crd/agentfleets.agentfleet.io

echo "== examples into namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
for f in examples/*.yaml; do
  kubectl apply -n "$NS" -f "$f"
done

echo "== nodes"
kubectl get nodes -L nvidia.com/gpu.product,agentfleet.io/nvlink-domain,topology.kubernetes.io/zone
echo
echo "== kubectl get agentfleets,modelreplicasets,vectorindexes -n $NS"
kubectl get agentfleets,modelreplicasets,vectorindexes -n "$NS"
echo
echo "Use the cluster:  eval \"\$(bash e2e/cluster.sh env)\"; kubectl get fleet -n $NS"
echo "Stop it:          bash e2e/cluster.sh down"
