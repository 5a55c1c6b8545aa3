#!/usr/bin/env bash
# Builds the agentfleet container image from the repository's Dockerfile without any registry:
#
#   base   a Debian root file system made by debootstrap from Debian packages (Python 3.11, venv,
#          CA certificates), cached as a tarball in $AGENTFLEET_CACHE/image-base-<suite>-<stamp>/
#          and imported into the local container storage as the PYTHON_IMAGE build argument;
#   image  `buildah build` of the Dockerfile with that base, tagged by a hash of its inputs
#          (Dockerfile, pyproject.toml, README.md, operator/, runtime/, shared/, the shipped task sets
#          e2e/eval/*-tasks.yaml, the base), so it is
#          rebuilt only when one of them changes.
#
# Usage: bash e2e/cluster/image.sh [base|build]      # prints the image reference (or the base's) on stdout
#
# Installs debootstrap, buildah, podman and runc from Debian when missing (podman and runc only
# run the image: e2e/tests/test_image.py). Needs root (debootstrap, container storage).
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
SUITE="bookworm"                      # Debian 12: Python 3.11, as the Dockerfile's default base
MIRROR="${AGENTFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What python:3.11-slim gives the Dockerfile: python, venv (pip via ensurepip), CA certificates.
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"
BUILD_RECIPE="1"
CACHE_ROOT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
BASE_REF="localhost/agentfleet-python-base:$SUITE"
IMAGE_REPO="localhost/agentfleet"

log() { printf '[image.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap and the container storage)"

APT_UPDATED=0
# Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
need() { # COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $APT_UPDATED -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
    APT_UPDATED=1
  fi
  log "installing $2 from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "$2" >&2
}

base_stamp() { echo "suite=$SUITE packages=$BASE_PACKAGES recipe=$BUILD_RECIPE" | sha256sum | cut -c1-12; }
BASE_DIR="$CACHE_ROOT/image-base-$SUITE-$(base_stamp)"

cmd_base() {
  need debootstrap debootstrap
  need podman podman
  if [[ ! -s "$BASE_DIR/rootfs.tar" ]]; then
    local start=$SECONDS tmp
    mkdir -p "$CACHE_ROOT"
    rm -rf "$CACHE_ROOT"/.image-base.*
    tmp="$(mktemp -d "$CACHE_ROOT/.image-base.XXXXXX")"
    log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 \
      || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log $tmp/debootstrap.log)"; }
    # An image needs no package lists, caches or logs.
    rm -rf "$tmp/rootfs/var/lib/apt/lists/"* "$tmp/rootfs/var/cache/apt/"*.bin "$tmp/rootfs/var/cache/apt/archives/"*.deb \
      "$tmp/rootfs/var/log/"*.log
    tar --numeric-owner -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
    rm -rf "$tmp/rootfs"
    mkdir -p "$(dirname "$BASE_DIR")"
    rm -rf "$BASE_DIR"
    mv "$tmp" "$BASE_DIR"
    log "base root file system in $BASE_DIR ($(du -h "$BASE_DIR/rootfs.tar" | cut -f1)) in $((SECONDS - start))s"
  fi
  # The tarball is the cache; the storage's copy is re-imported when it is missing or stale.
  local want have
  want="$(base_stamp)"
  have="$(podman image inspect --format '{{index .Labels "io.agentfleet.base-stamp"}}' "$BASE_REF" 2>/dev/null || true)"
  if [[ "$have" != "$want" ]]; then
    log "importing $BASE_DIR/rootfs.tar as $BASE_REF"
    podman import --change "LABEL io.agentfleet.base-stamp=$want" --change 'CMD ["python3"]' \
      "$BASE_DIR/rootfs.tar" "$BASE_REF" >&2
  fi
  echo "$BASE_REF"
}

inputs_stamp() {
  {
    echo "recipe=$BUILD_RECIPE base=$(base_stamp)"
    cd "$ROOT"
    # Tracked and untracked-but-not-ignored files: what the build context holds.
    git ls-files -co --exclude-standard -- Dockerfile pyproject.toml README.md operator runtime shared 'e2e/eval/*-tasks.yaml' \
      | LC_ALL=C sort | while read -r f; do [[ -f "$f" ]] && sha256sum "$f"; done
  } | sha256sum | cut -c1-16
}

cmd_build() {
  need buildah buildah
  # runc runs the image in e2e/tests/test_image.py: Debian 12's crun refuses this kind of machine's
  # hybrid cgroup layout (v1 controllers beside a v2 mount).
  need runc runc
  cmd_base >/dev/null
  local ref
  ref="$IMAGE_REPO:$(inputs_stamp)"
  if podman image exists "$ref"; then
    log "$ref is up to date"
    echo "$ref"
    return 0
  fi
  local start=$SECONDS
  log "building $ref from $ROOT/Dockerfile on $BASE_REF"
  # chroot isolation: no runtime daemon, no nested user namespace; RUN steps use the host's
  # network.
  # RUN steps reach PyPI the way the host's own pip does: its pip configuration and CA bundle
  # (a mirror, or a proxy's certificate authority) are mounted for the build only and are not
  # part of any layer.
  local mounts=() f
  for f in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt; do
    [[ -f "$f" ]] && mounts+=(--volume "$f:$f:ro")
  done
  # One retry: a RUN step once failed at once with runc's "Close_Fd sealing memfd copy: Device or
  # resource busy" and the same build passed a minute later; the cached layers make a retry cheap.
  local try
  for try in 1 2; do
    buildah build --isolation chroot --layers "${mounts[@]}" --build-arg "PYTHON_IMAGE=$BASE_REF" -t "$ref" \
      -f "$ROOT/Dockerfile" "$ROOT" >&2 && break
    [[ $try -eq 2 ]] && die "buildah build failed"
    log "buildah build failed; retrying once in 10 s"
    sleep 10
  done
  log "built $ref in $((SECONDS - start))s"
  echo "$ref"
}

case "${1:-build}" in
  base) cmd_base ;;
  build) cmd_build ;;
  *) echo "usage: $0 [base|build]" >&2; exit 2 ;;
esac
