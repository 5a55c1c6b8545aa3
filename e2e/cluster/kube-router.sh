#!/usr/bin/env bash
# Builds kube-router (its network policy controller: iptables + ipset) into the cache, for
# tests/integration/operator/test_network_policy_enforced.py, which enforces the replicas'
# NetworkPolicy on a node of its own, and e2e/harness/netpol.py, which runs it in the e2e
# cluster's real node (e2e/tests/test_network_policy.py). Why kube-router: the e2e node runs the bridge CNI, which
# enforces no NetworkPolicy; kube-network-policies (sigs.k8s.io, v0.8.0) needs nftables' queue
# expression, which this kernel lacks (CONFIG_NFT_QUEUE unset: "Could not process rule");
# Calico is not on the Go module proxy; kube-router v2.1.0 is, and the kernel has ipset and
# iptables' set match. It needs the ipset and iptables commands (apt-get install ipset iptables).
# Note: security advisories are reported against v2.1.0, the only version on the proxy; it runs
# here only inside the test's private network namespace, against the test's own API server.
# shellcheck source=e2e/cluster/go-env.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/go-env.sh"
agentfleet_go_env
VERSION="v2.1.0"
OUT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}/kube-router-$VERSION/bin"
if [[ -x "$OUT/kube-router" ]]; then
  echo "kube-router $VERSION already built in $OUT"
  exit 0
fi
mkdir -p "$OUT"
echo "building kube-router $VERSION with $(go env GOVERSION) (cold: minutes on 2 cores)"
GOBIN="$OUT" CGO_ENABLED=0 go install "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$VERSION"
"$OUT/kube-router" --version
