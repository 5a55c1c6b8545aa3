#!/usr/bin/env bash
# Other projects' APIs and binaries for the e2e tier, taken from their Go modules at pinned
# versions through the Go module proxy and cached next to the control plane ($AGENTFLEET_CACHE,
# default ~/.cache/agentfleet). Nothing of theirs is copied into this repository.
#
#   crds   the CRDs of the Prometheus Operator (PodMonitor, ServiceMonitor, PrometheusRule),
#          KEDA (ScaledObject and the kinds its operator watches), Argo CD (Application) and the
#          Gateway API Inference Extension (InferencePool), copied
#          from the module folders into $CACHE/thirdparty-crds-<stamp>/; prints that folder.
#   keda   KEDA's operator and metrics API server (cmd/operator, cmd/adapter) built from the
#          module pinned by e2e/cluster/keda/go.mod + go.sum into $CACHE/keda-<version>/bin; prints it.
#          Cold: 1.8 GB of modules, 3.3 GB of build cache, ~1,300 CPU-s (see e2e/README.md).
#   keda-fetch  only download the modules keda builds from (nothing when keda is built already).
#   jaeger the Jaeger v2 all-in-one (cmd/jaeger: OTLP receivers, in-memory storage, query API), the
#          trace collector of the tracing tests, built from the module pinned by e2e/cluster/jaeger/go.mod +
#          go.sum into $CACHE/jaeger-<version>/jaeger; prints that folder.
#
# Usage: CRD_DIR="$(bash e2e/cluster/thirdparty.sh crds)"; KEDA_BIN="$(bash e2e/cluster/thirdparty.sh keda)";
#        JAEGER_DIR="$(bash e2e/cluster/thirdparty.sh jaeger)"
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEDA_GOMOD_DIR="$CLUSTER_DIR/keda"
JAEGER_GOMOD_DIR="$CLUSTER_DIR/jaeger"
JAEGER_VERSION="v1.76.0"   # the Go module's tag of the Jaeger v2 release line (cmd/jaeger is v2)
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
KEDA_VERSION="v2.21.0"
ARGOCD_VERSION="v2.14.21"   # the newest v2 line; v3 needs a newer Go than the control plane's
GIE_VERSION="v1.6.0"        # Gateway API Inference Extension: the newest the module proxy serves here
BUILD_RECIPE="1"
CACHE_ROOT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"

# module@version folder: file, ... (paths inside the module)
CRD_SOURCES=(
  "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION example/prometheus-operator-crd monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml"
  "github.com/kedacore/keda/v2@$KEDA_VERSION config/crd/bases keda.sh_scaledobjects.yaml keda.sh_scaledjobs.yaml keda.sh_triggerauthentications.yaml keda.sh_clustertriggerauthentications.yaml eventing.keda.sh_cloudeventsources.yaml eventing.keda.sh_clustercloudeventsources.yaml"
  "github.com/argoproj/argo-cd/v2@$ARGOCD_VERSION manifests/crds application-crd.yaml"
  "sigs.k8s.io/gateway-api-inference-extension@$GIE_VERSION config/crd/bases inference.networking.k8s.io_inferencepools.yaml"
)

log() { printf '[thirdparty.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=e2e/cluster/go-env.sh
source "$CLUSTER_DIR/go-env.sh"
ensure_go() { agentfleet_go_env || die "Go is not installed"; }

cmd_crds() {
  local stamp dir
  stamp="$(printf '%s\n' "recipe=$BUILD_RECIPE" "${CRD_SOURCES[@]}" | sha256sum | cut -c1-12)"
  dir="$CACHE_ROOT/thirdparty-crds-$stamp"
  if [[ -f "$dir/.complete" ]]; then echo "$dir"; return 0; fi
  ensure_go
  local tmp src mod folder files moddir f start=$SECONDS
  mkdir -p "$CACHE_ROOT"
  tmp="$(mktemp -d "$CACHE_ROOT/.thirdparty-crds.XXXXXX")"
  for src in "${CRD_SOURCES[@]}"; do
    read -r mod folder files <<<"$src"
    # Outside any module: `go mod download` fetches just that module's zip (checked against
    # sum.golang.org) and reports where it is unpacked.
    moddir="$(cd "$tmp" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$moddir/$folder" ]] || die "$mod has no folder $folder"
    for f in $files; do
      [[ -s "$moddir/$folder/$f" ]] || die "$mod has no $folder/$f"
      cp "$moddir/$folder/$f" "$tmp/"
    done
    echo "$mod $folder: $files" >> "$tmp/SOURCES"
  done
  chmod -R u+w "$tmp"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "third-party CRDs in $dir in $((SECONDS - start))s"
  echo "$dir"
}

# What a wrapper module's build is made of: its pins and this script's recipe.
gomod_stamp() {
  local name=$1 version=$2 gomod=$3
  { echo "$name=$version recipe=$BUILD_RECIPE"; cat "$gomod/go.mod" "$gomod/go.sum"; } | sha256sum | cut -d' ' -f1
}

keda_stamp() { gomod_stamp keda "$KEDA_VERSION" "$KEDA_GOMOD_DIR"; }

keda_built() {
  local bin="$CACHE_ROOT/keda-$KEDA_VERSION/bin"
  [[ -x "$bin/keda-operator" && -x "$bin/keda-adapter" && "$(cat "$bin/.stamp" 2>/dev/null)" == "$(keda_stamp)" ]]
}

# Some 600 modules: one TLS handshake that times out fails the whole download, and a rerun
# fetches only what is missing. Run in e2e/cluster/keda (or e2e/cluster/jaeger) with GOFLAGS=-mod=readonly.
keda_download() {
  local try
  for try in 1 2 3 4; do
    go mod download >&2 && return 0
    [[ $try -lt 4 ]] || return 1
    echo "go mod download failed (try $try of 4); again in $((try * 15))s" >&2
    sleep $((try * 15))
  done
}

# The download is network-bound and the build CPU-bound: e2e/test.sh fetches KEDA's modules
# while the control plane compiles, which takes the download off a cold run's wall time.
gomod_fetch() {
  local name=$1 version=$2 gomod=$3 start=$SECONDS
  ensure_go
  (cd "$gomod" && export GOFLAGS="${GOFLAGS:-} -mod=readonly" && keda_download) || die "go mod download failed for $gomod"
  log "$name $version modules downloaded in $((SECONDS - start))s"
}

cmd_keda_fetch() { keda_built || gomod_fetch KEDA "$KEDA_VERSION" "$KEDA_GOMOD_DIR"; }

cmd_keda() {
  local bin="$CACHE_ROOT/keda-$KEDA_VERSION/bin"
  if keda_built; then
    echo "$bin"
    return 0
  fi
  ensure_go
  grep -q "github.com/kedacore/keda/v2 $KEDA_VERSION" "$KEDA_GOMOD_DIR/go.mod" || die "e2e/cluster/keda/go.mod does not pin KEDA $KEDA_VERSION"
  gomod_build keda "$KEDA_VERSION" "$KEDA_GOMOD_DIR" "$bin" \
    "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
    keda-operator=github.com/kedacore/keda/v2/cmd/operator keda-adapter=github.com/kedacore/keda/v2/cmd/adapter
  echo "$bin"
}

# Builds packages of a wrapper module (e2e/cluster/keda, e2e/cluster/jaeger) into DEST, whole or not at all:
#   gomod_build NAME VERSION GOMOD_DIR DEST LDFLAGS BINARY=PACKAGE...
# KEDA cold: ~1,300 CPU-s; Jaeger: see e2e/README.md.
gomod_build() {
  local name=$1 version=$2 gomod=$3 dest=$4 ld=$5
  shift 5
  local tmp start=$SECONDS
  mkdir -p "$CACHE_ROOT"
  rm -rf "$CACHE_ROOT/.$name-build."*
  tmp="$(mktemp -d "$CACHE_ROOT/.$name-build.XXXXXX")"
  log "building $name $version ($*) with $(go env GOVERSION)"
  (
    cd "$gomod" || exit 1
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
    keda_download || exit 1
    for target in "$@"; do
      go build -trimpath -ldflags "$ld" -o "$tmp/${target%%=*}" "${target#*=}" >&2 || exit 1
    done
  ) || die "go build failed"
  gomod_stamp "$name" "$version" "$gomod" > "$tmp/.stamp"
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  chmod 755 "$dest"
  log "built $name $version into $dest in $((SECONDS - start))s"
}

jaeger_built() {
  local dir="$CACHE_ROOT/jaeger-$JAEGER_VERSION"
  [[ -x "$dir/jaeger" && "$(cat "$dir/.stamp" 2>/dev/null)" == "$(gomod_stamp jaeger "$JAEGER_VERSION" "$JAEGER_GOMOD_DIR")" ]]
}

# As keda-fetch: Jaeger's modules (224 MB of zips, 1.1 GB unpacked) download while the control plane compiles.
cmd_jaeger_fetch() { jaeger_built || gomod_fetch Jaeger "$JAEGER_VERSION" "$JAEGER_GOMOD_DIR"; }

cmd_jaeger() {
  local dir="$CACHE_ROOT/jaeger-$JAEGER_VERSION"
  if jaeger_built; then
    echo "$dir"
    return 0
  fi
  ensure_go
  grep -q "github.com/jaegertracing/jaeger $JAEGER_VERSION" "$JAEGER_GOMOD_DIR/go.mod" ||
    die "e2e/cluster/jaeger/go.mod does not pin Jaeger $JAEGER_VERSION"
  gomod_build jaeger "$JAEGER_VERSION" "$JAEGER_GOMOD_DIR" "$dir" "-s -w" \
    jaeger=github.com/jaegertracing/jaeger/cmd/jaeger
  echo "$dir"
}

case "${1:-}" in
  crds) cmd_crds ;;
  keda) cmd_keda ;;
  keda-fetch) cmd_keda_fetch ;;
  jaeger) cmd_jaeger ;;
  jaeger-fetch) cmd_jaeger_fetch ;;
  *) echo "usage: $0 crds|keda|keda-fetch|jaeger|jaeger-fetch" >&2; exit 2 ;;
esac
