#!/usr/bin/env bash
# Builds the helm CLI from Go modules pinned by e2e/cluster/helm/go.mod + go.sum into
# the same cache as e2e/cluster/cluster.sh ($AGENTFLEET_CACHE, default
# ~/.cache/agentfleet) and prints the binary's path on stdout. Idempotent: a
# cached binary whose stamp matches go.mod/go.sum is reused (cold build: a few
# minutes on 2 cores). Nothing prebuilt is downloaded.
#
# Usage: HELM="$(bash e2e/cluster/helm.sh)"
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GOMOD_DIR="$CLUSTER_DIR/helm"
# Must agree with e2e/cluster/helm/go.mod (checked below).
HELM_VERSION="v3.21.4"
BUILD_RECIPE="1"

CACHE_ROOT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
BIN_DIR="$CACHE_ROOT/helm-$HELM_VERSION/bin"

log() { printf '[helm.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp() {
  { echo "helm=$HELM_VERSION recipe=$BUILD_RECIPE"; cat "$GOMOD_DIR/go.mod" "$GOMOD_DIR/go.sum"; } \
    | sha256sum | cut -d' ' -f1
}

if [[ -x "$BIN_DIR/helm" && -f "$BIN_DIR/.stamp" && "$(cat "$BIN_DIR/.stamp")" == "$(stamp)" ]]; then
  echo "$BIN_DIR/helm"
  exit 0
fi

# shellcheck source=e2e/cluster/go-env.sh
source "$CLUSTER_DIR/go-env.sh"
agentfleet_go_env || die "Go is not installed"

grep -q "helm.sh/helm/v3 $HELM_VERSION" "$GOMOD_DIR/go.mod" || die "e2e/cluster/helm/go.mod does not pin helm $HELM_VERSION"

mkdir -p "$CACHE_ROOT"
rm -rf "$CACHE_ROOT"/.helm-build.*
tmp="$(mktemp -d "$CACHE_ROOT/.helm-build.XXXXXX")"
start=$SECONDS
log "building helm $HELM_VERSION with $(go env GOVERSION)"
(
  cd "$GOMOD_DIR" || exit 1
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
  go mod download >&2 || exit 1
  # What helm's Makefile sets: the version it reports, and the Kubernetes
  # version `helm template`/`lint` assume (client-go minor + 1.x, i.e. 1.<minor>).
  cg="$(go list -m -f '{{.Version}}' k8s.io/client-go)" || exit 1   # v0.35.1
  cg="${cg#v0.}"; minor="${cg%%.*}"
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  go build -trimpath -ldflags "$ld" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm >&2 || exit 1
) || die "go build failed"
reported="$("$tmp/helm" version --short 2>&1 || true)"
[[ "$reported" == "$HELM_VERSION"* ]] || die "built helm reports '$reported', expected $HELM_VERSION"
stamp > "$tmp/.stamp"
mkdir -p "$(dirname "$BIN_DIR")"
rm -rf "$BIN_DIR"
mv "$tmp" "$BIN_DIR"
chmod 755 "$BIN_DIR"
log "built helm $HELM_VERSION into $BIN_DIR in $((SECONDS - start))s"
echo "$BIN_DIR/helm"
