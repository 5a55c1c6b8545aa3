#!/usr/bin/env bash
# A mutant of the project image: the image e2e/cluster/image.sh builds, with the Python files a patch
# changes replaced by their patched copies (one layer on top, seconds to build). The real-node tests
# run against it with AGENTFLEET_REALNODE_IMAGE=<ref>, to show which test catches the change.
#
# Usage: bash e2e/cluster/node/mutant.sh e2e/cluster/node/mutants/NAME.patch [IMAGE]   # prints the mutant's reference
#
# The patch is a `git diff` of files under operator/, runtime/ or shared/ (installed into the image's
# site-packages, so operator/agentfleet/x.py lands in .../site-packages/agentfleet/x.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
PATCH="$(realpath "${1:?usage: mutant.sh PATCH [IMAGE]}")"
IMAGE="${2:-$(bash "$ROOT/e2e/cluster/image.sh" build | tail -1)}"
SITE=/opt/agentfleet/lib/python3.11/site-packages
REF="localhost/agentfleet-mutant:$(cat "$PATCH" <(echo "$IMAGE") | sha256sum | cut -c1-16)"
if podman image exists "$REF"; then echo "$REF"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mapfile -t files < <(grep -E '^\+\+\+ b/(operator|runtime|shared)/' "$PATCH" | sed -E 's#^\+\+\+ b/##')
[[ ${#files[@]} -gt 0 ]] || { echo "mutant.sh: $PATCH changes no file under operator/, runtime/ or shared/" >&2; exit 2; }
{
  echo "FROM $IMAGE"
  for f in "${files[@]}"; do
    mkdir -p "$work/src/$(dirname "$f")"
    git -C "$ROOT" show "HEAD:$f" >"$work/src/$f"
    echo "COPY src/$f $SITE/${f#*/}"
  done
} >"$work/Containerfile"
# patch says what failed on stdout: send that to stderr, so a caller never takes it for the reference.
patch -s -p1 -d "$work/src" <"$PATCH" >&2
buildah build --isolation chroot -t "$REF" -f "$work/Containerfile" "$work" >&2
echo "$REF"
