# Sourced by e2e/cluster/helm.sh and e2e/cluster/thirdparty.sh: puts a Go on PATH, the same lookup as
# e2e/cluster/cluster.sh (which installs it via apt when missing); any go >= 1.21 fetches the toolchain
# a go.mod names by itself (GOTOOLCHAIN=auto). Returns non-zero when no Go can be found.
# shellcheck shell=bash

agentfleet_go_env() {
  local here d pass
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  for pass in lookup install; do
    for d in /usr/local/go/bin /usr/lib/go/bin $(compgen -G '/usr/lib/go-1.*' | sort -V -r | sed 's|$|/bin|'); do
      command -v go >/dev/null 2>&1 || { [[ -x "$d/go" ]] && export PATH="$d:$PATH"; }
    done
    command -v go >/dev/null 2>&1 && break
    # installs Go (and builds the control plane, needed anyway)
    [[ $pass == lookup ]] && bash "$here/cluster.sh" build >&2
  done
  command -v go >/dev/null 2>&1 || return 1
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}
