#!/usr/bin/env bash
# agentfleet e2e harness: a real, local Kubernetes control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) plus the kwok
# controller, which makes simulated GPU nodes Ready and runs the pods bound to
# them (Running/Ready with a pod IP) without any container runtime, and one
# real node beside them: a kubelet, kube-proxy and containerd (runc, the bridge
# CNI) that run pods' containers, inside a private network namespace (see
# "the real node" below; AGENTFLEET_REAL_NODE=0 leaves it out).
#
# Usage: e2e/cluster/cluster.sh build|go|up|down|status|env|nodes|logs|import   (go: only install Go)
#
# Why processes are started directly instead of `kwokctl --runtime binary`:
# kwokctl wants to download binaries unless every path is overridden, binds
# to 0.0.0.0 by default, signs everything with one admin cert and keeps its
# state under ~/.kwok.  Starting six processes ourselves is ~150 lines of
# bash, keeps every flag visible (all listeners on 127.0.0.1), and gives us
# plain pid files and logs under $AGENTFLEET_CLUSTER_DIR.
#
# Nothing here downloads a prebuilt binary: everything is compiled from Go
# modules pinned by e2e/cluster/k8s/go.mod + go.sum.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_DIR="$(cd "$CLUSTER_DIR/.." && pwd)"
GOMOD_DIR="$CLUSTER_DIR/k8s"        # k8s.io/kubernetes + etcd
KWOK_GOMOD_DIR="$CLUSTER_DIR/kwok"  # sigs.k8s.io/kwok (separate dependency graph)
CONFIG_DIR="$CLUSTER_DIR/config"     # the components' configuration files, ${VAR} placeholders filled by render

# Pinned versions. They must agree with e2e/cluster/k8s/go.mod and e2e/cluster/kwok/go.mod
# (checked by `build`).
K8S_VERSION="v1.36.3"
ETCD_VERSION="v3.6.8"
KWOK_VERSION="v0.8.0"
# The real node's container runtime, built from its own module (its go.sum is
# checked against the Go checksum database by `go install`).
CONTAINERD_VERSION="v2.4.2"
# Bump when the build recipe changes, to force a rebuild of the cache.
BUILD_RECIPE="2"
NODE_RECIPE="1"

CACHE_ROOT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION/bin"
NODE_BIN_DIR="$CACHE_ROOT/containerd-$CONTAINERD_VERSION/bin"
STATE_DIR="${AGENTFLEET_CLUSTER_DIR:-/tmp/agentfleet-cluster}"
TOPOLOGY="${AGENTFLEET_TOPOLOGY:-$CLUSTER_DIR/topology.yaml}"
PYTHON="${AGENTFLEET_PYTHON:-python3}"

HOST="127.0.0.1"
APISERVER_PORT="${AGENTFLEET_APISERVER_PORT:-16443}"
ETCD_PORT="${AGENTFLEET_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${AGENTFLEET_ETCD_PEER_PORT:-12380}"
KCM_PORT="${AGENTFLEET_KCM_PORT:-16257}"
SCHEDULER_PORT="${AGENTFLEET_SCHEDULER_PORT:-16259}"
KWOK_PORT="${AGENTFLEET_KWOK_PORT:-16247}"
SERVICE_CIDR="${AGENTFLEET_SERVICE_CIDR:-10.96.0.0/16}"
POD_CIDR="${AGENTFLEET_POD_CIDR:-10.244.0.1/16}"
UP_TIMEOUT="${AGENTFLEET_UP_TIMEOUT:-180}"
LOG_LEVEL="${AGENTFLEET_LOG_LEVEL:-0}"   # klog -v for the Kubernetes components

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
NODE_COMPONENTS=(nodenet containerd kubelet kube-proxy)
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kubelet kube-proxy)
NODE_BINARIES=(containerd containerd-shim-runc-v2 ctr)
KWOK_STAGES="kwok-stages.yaml"   # kwok's stock "fast" stages, copied from the module
PAUSE_IMAGE="localhost/agentfleet-pause:1"

# The real node (AGENTFLEET_REAL_NODE=0: kwok nodes only). Everything of it
# lives in a network namespace of its own, named after the state dir so that
# clusters side by side do not meet: a veth pair with both ends inside carries
# the node's address and the apiserver's advertised address (e2e/harness/nodenet.py
# forwards that one to 127.0.0.1 outside), the bridge CNI's pod subnet and
# kube-proxy's rules exist only inside. Both addresses are never routed outside.
REAL_NODE="${AGENTFLEET_REAL_NODE:-1}"
NODE_NAME="${AGENTFLEET_NODE_NAME:-agentfleet-node}"
NETNS="af-$(printf %s "$STATE_DIR" | sha256sum | cut -c1-10)"
NETNS_PATH="/var/run/netns/$NETNS"
NODE_DIR="$STATE_DIR/node"
NODE_GW="10.200.0.1"       # the apiserver's advertised address and cluster DNS, inside
NODE_IP="10.200.0.2"       # the kubelet's node IP
NODE_POD_CIDR="10.201.0.0/16"
EGRESS_SOCKET="$STATE_DIR/run/nodenet-egress.sock"  # the apiserver's way to the node (nodenet.py)
CGROUP_ROOT="/$NETNS"
REAL_NODE_LABEL="agentfleet.io/real-node"  # the node's label and taint      # the kubelet's cgroupRoot: every pod's cgroup is under it
# Host sysctls the kubelet sets (it insists on its values): restored by `down`.
HOST_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
if [[ $REAL_NODE == 1 || -d $NODE_DIR ]]; then COMPONENTS+=("${NODE_COMPONENTS[@]}"); fi

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

render() { # TEMPLATE DEST VAR...: $CONFIG_DIR/TEMPLATE with each ${VAR} replaced by that variable's value
  local text var pattern
  text="$(<"$CONFIG_DIR/$1")" || die "no config template $CONFIG_DIR/$1"
  for var in "${@:3}"; do
    pattern='${'"$var"'}'
    text="${text//"$pattern"/"${!var}"}"
  done
  # A placeholder left over is a variable the caller forgot to name: fail here, not in the component.
  [[ "$text" != *'${'* ]] || die "$1: unfilled placeholder(s): $(grep -o '\${[A-Za-z_]*}' <<<"$text" | sort -u | tr '\n' ' ')"
  printf '%s\n' "$text" > "$2"
}

json_str() { # a JSON string literal of $1 (backslash, quote and control characters escaped)
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\r'/\\r}"
  printf '"%s"' "$s"
}

# --------------------------------------------------------------------------
# prerequisites
# --------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need to install $*, but apt-get is not available"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  if [[ $APT_UPDATED -eq 0 ]]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

go_minor() { # prints the minor version of the go on PATH, or 0
  local v
  v="$(go env GOVERSION 2>/dev/null || true)"   # e.g. go1.26.8
  v="${v#go1.}"
  v="${v%%[.a-z]*}"
  [[ "$v" =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}

ensure_go() {
  # Any go >= 1.21 will do: it fetches the toolchain named in go.mod from the
  # Go module proxy by itself (GOTOOLCHAIN=auto) when it is older.
  local d
  for d in /usr/local/go/bin /usr/lib/go/bin $(compgen -G '/usr/lib/go-1.*' | sort -V -r | sed 's|$|/bin|'); do
    if ! command -v go >/dev/null 2>&1 || [[ $(go_minor) -lt 21 ]]; then
      [[ -x "$d/go" ]] && export PATH="$d:$PATH"
    fi
  done
  if ! command -v go >/dev/null 2>&1 || [[ $(go_minor) -lt 21 ]]; then
    log "installing Go via apt"
    apt_install golang-go ca-certificates git
    if [[ $(go_minor) -lt 21 ]]; then
      local pkg
      pkg="$(apt-cache search --names-only '^golang-1\.[0-9]+-go$' | awk '{print $1}' | sort -V | tail -1)"
      if [[ -n "$pkg" ]]; then
        apt_install "$pkg"
        d="$(compgen -G '/usr/lib/go-1.*' | sort -V | tail -1)"
        export PATH="$d/bin:$PATH"
      fi
    fi
  fi
  [[ $(go_minor) -ge 21 ]] || die "could not find or install Go >= 1.21"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

ensure_runtime_tools() {
  local missing=()
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]} via apt"
    apt_install "${missing[@]}"
  fi
  if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    log "installing PyYAML for $PYTHON"
    "$PYTHON" -m pip install -q pyyaml >&2 \
      || "$PYTHON" -m pip install -q --break-system-packages pyyaml >&2 \
      || apt_install python3-yaml
    "$PYTHON" -c 'import yaml' || die "PyYAML is not importable by $PYTHON"
  fi
}

# The real node runs containers with Debian's runc and CNI plugins, builds its
# pause image with buildah and programs Services with iptables.
ensure_node_tools() {
  local missing=()
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] \
    || missing+=(containernetworking-plugins)
  command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  command -v gcc >/dev/null 2>&1 && [[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/aarch64-linux-gnu/libc.a ]] \
    || missing+=(gcc libc6-dev)
  command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]} via apt (the real node)"
    apt_install "${missing[@]}"
  fi
}

# --------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------
build_stamp() {
  {
    echo "k8s=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION recipe=$BUILD_RECIPE"
    cat "$GOMOD_DIR/go.mod" "$GOMOD_DIR/go.sum" "$KWOK_GOMOD_DIR/go.mod" "$KWOK_GOMOD_DIR/go.sum"
  } | sha256sum | cut -d' ' -f1
}

is_built() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
  [[ -s "$BIN_DIR/$KWOK_STAGES" ]] || return 1
  [[ -f "$BIN_DIR/.stamp" && "$(cat "$BIN_DIR/.stamp")" == "$(build_stamp)" ]]
}

cmd_build() {
  if is_built; then
    log "binaries for Kubernetes $K8S_VERSION already built in $BIN_DIR"
    return 0
  fi
  ensure_go
  # The versions in go.mod are the source of truth for what gets compiled;
  # refuse to label a build with versions it does not contain.
  grep -q "k8s.io/kubernetes $K8S_VERSION" "$GOMOD_DIR/go.mod" || die "go.mod does not pin k8s.io/kubernetes $K8S_VERSION"
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$GOMOD_DIR/go.mod" || die "go.mod does not pin etcd $ETCD_VERSION"
  grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$KWOK_GOMOD_DIR/go.mod" || die "kwok/go.mod does not pin kwok $KWOK_VERSION"

  local tmp start minor
  mkdir -p "$CACHE_ROOT"
  rm -rf "$CACHE_ROOT"/.build.*   # leftovers of an interrupted build
  tmp="$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")"
  start=$SECONDS
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local kv="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    kv+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  log "building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION with $(go env GOVERSION) (cold: ~15 min on 2 cores)"
  # (errexit does not apply inside a `( ... ) || die` subshell: every step
  # checks its own status.)
  (
    cd "$GOMOD_DIR" || exit 1
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
    go mod download >&2 || exit 1
    go build -trimpath -ldflags "-s -w$kv" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy || exit 1
    go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
      -o "$tmp/etcd" go.etcd.io/etcd/server/v3 || exit 1
    cd "$KWOK_GOMOD_DIR" || exit 1
    go mod download >&2 || exit 1
    go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok || exit 1
    # The kwok binary has no built-in behaviour: it needs Stage objects. Take
    # the stock "fast" set (node-initialize, heartbeat-with-lease, pod
    # ready/complete/delete) from the very same pinned module.
    kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)" || exit 1
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"; echo "# from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage/$f"
      cat "$kwok_dir/kustomize/stage/$f" || exit 1
    done > "$tmp/$KWOK_STAGES" || exit 1
  ) || die "go build failed"
  local reported
  reported="$("$tmp/kubectl" version --client 2>&1 || true)"
  [[ "$reported" == *"Client Version: $K8S_VERSION"* ]] || die "built kubectl does not report $K8S_VERSION: $reported"
  build_stamp > "$tmp/.stamp"
  mkdir -p "$(dirname "$BIN_DIR")"
  rm -rf "$BIN_DIR"
  mv "$tmp" "$BIN_DIR"
  chmod 755 "$BIN_DIR"
  log "built ${BINARIES[*]} into $BIN_DIR in $((SECONDS - start))s"
}

node_stamp() {
  { echo "containerd=$CONTAINERD_VERSION recipe=$NODE_RECIPE"; cat "$CLUSTER_DIR/node/pause.c"; } \
    | sha256sum | cut -d' ' -f1
}

node_is_built() {
  local b
  for b in "${NODE_BINARIES[@]}"; do [[ -x "$NODE_BIN_DIR/$b" ]] || return 1; done
  [[ -s "$NODE_BIN_DIR/pause.tar" && -f "$NODE_BIN_DIR/.stamp" && "$(cat "$NODE_BIN_DIR/.stamp")" == "$(node_stamp)" ]]
}

# The real node's runtime: containerd, its runc shim and ctr from containerd's
# own module, and the pod sandbox ("pause") image: a static C program
# (e2e/cluster/node/pause.c) as the only file of an image made with buildah and saved
# as a docker archive, which `up` imports (there is no registry to pull from).
cmd_build_node() {
  if node_is_built; then
    log "containerd $CONTAINERD_VERSION and the pause image already built in $NODE_BIN_DIR"
    return 0
  fi
  ensure_go
  ensure_node_tools
  local tmp start=$SECONDS ctr
  mkdir -p "$CACHE_ROOT"
  rm -rf "$CACHE_ROOT"/.build-node.*
  tmp="$(mktemp -d "$CACHE_ROOT/.build-node.XXXXXX")"
  log "building containerd $CONTAINERD_VERSION with $(go env GOVERSION) (cold: ~50 s on 2 cores)"
  (
    cd "$tmp" || exit 1
    export CGO_ENABLED=0 GOBIN="$tmp"
    go install -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "-s -w" \
      "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" || exit 1
    gcc -static -Os -s -o "$tmp/pause" "$CLUSTER_DIR/node/pause.c" || exit 1
    ctr="$(buildah from scratch)" || exit 1
    buildah copy "$ctr" "$tmp/pause" /pause >/dev/null \
      && buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr" \
      && buildah commit --quiet --rm "$ctr" "$PAUSE_IMAGE" >/dev/null \
      && buildah push --quiet "$PAUSE_IMAGE" "docker-archive:$tmp/pause.tar:$PAUSE_IMAGE" \
      && buildah rmi "$PAUSE_IMAGE" >/dev/null || exit 1
    rm -f "$tmp/pause"
  ) >&2 || die "building the real node's runtime failed"
  "$tmp/containerd" --version | grep -qF " ${CONTAINERD_VERSION#v}" || die "built containerd is not $CONTAINERD_VERSION"
  node_stamp > "$tmp/.stamp"
  mkdir -p "$(dirname "$NODE_BIN_DIR")"
  rm -rf "$NODE_BIN_DIR"
  mv "$tmp" "$NODE_BIN_DIR"
  chmod 755 "$NODE_BIN_DIR"
  log "built ${NODE_BINARIES[*]} and the pause image into $NODE_BIN_DIR in $((SECONDS - start))s"
}

# --------------------------------------------------------------------------
# cluster lifecycle
# --------------------------------------------------------------------------
PKI="$STATE_DIR/pki"
RUN="$STATE_DIR/run"
LOGS="$STATE_DIR/logs"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
MARKER="$STATE_DIR/.agentfleet-cluster"
APISERVER_URL="https://$HOST:$APISERVER_PORT"
STARTED=()

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }

# alive PID: the process exists and is not a zombie
alive() {
  local st
  [[ -r "/proc/$1/stat" ]] || return 1
  st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# proc_start PID: the process's start time (clock ticks since boot, field 22
# of /proc/PID/stat). It is fixed at fork and survives exec, and a reused pid
# belongs to a process that started later, so (pid, start time) names one
# process from the moment `&` returns -- before the child has exec'd the
# binary (under load that can take seconds), and after.
proc_start() {
  local st fields
  st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  st="${st##*) }"   # drop "pid (comm) ": comm may hold spaces and ')'
  read -ra fields <<< "$st"
  [[ ${#fields[@]} -ge 20 ]] || return 1
  echo "${fields[19]}"
}

# component_pid NAME: prints the pid if the process started for NAME is still
# running (pid files can outlive their process; a pid can be reused).
component_pid() {
  local c=$1 pid start
  [[ -f "$RUN/$c.pid" && -f "$RUN/$c.start" ]] || return 1
  pid="$(cat "$RUN/$c.pid")"; start="$(cat "$RUN/$c.start")"
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ -n "$start" && "$(proc_start "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

# exec_done PID EXE: the process runs EXE (its exec has happened).
exec_done() { [[ "$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | head -1)" == "$2" ]]; }

component_exe() {
  case $1 in
    containerd) echo "$NODE_BIN_DIR/containerd" ;;
    # The interpreter itself, not a launcher such as a pyenv shim (a script that execs the real
    # one): the exec that start_component waits for is the one that leaves our path in cmdline.
    nodenet) "$PYTHON" -c 'import sys; print(sys.executable)' ;;
    *) echo "$BIN_DIR/$1" ;;
  esac
}

start_component() { # NAME ARGS...
  local c=$1; shift
  local exe pid i pre=()
  exe="$(component_exe "$c")"
  echo "$exe" > "$RUN/$c.exe"
  # The real node's processes run in its network namespace. nsenter, not `ip
  # netns exec`: that one also remounts /sys, which hides the cgroup v1
  # hierarchies from the kubelet ("failed to find cgroup mounts").
  case $c in containerd|kubelet|kube-proxy) pre=(nsenter "--net=$NETNS_PATH") ;; esac
  # setsid: own session, so a Ctrl-C in the terminal (or pytest) that ran
  # `up` does not take the cluster down with it. All fds are redirected so
  # callers capturing our output do not hang on inherited pipes; fd 9 (the
  # state-dir lock) is closed so the daemons do not keep holding it.
  if [[ $c == kwok ]]; then
    # kwok always reads ~/.kwok/kwok.yaml if present: give it its own HOME.
    setsid env HOME="$STATE_DIR/kwok-home" "$exe" "$@" >>"$LOGS/$c.log" 2>&1 </dev/null 9>&- &
  else
    setsid "${pre[@]}" "$exe" "$@" >>"$LOGS/$c.log" 2>&1 </dev/null 9>&- &
  fi
  pid=$!
  # Record the pid with its start time at once, so that stop_all finds this
  # process even if `up` fails (or is killed) before the exec below is seen.
  echo "$pid" > "$RUN/$c.pid"
  proc_start "$pid" > "$RUN/$c.start" || true
  STARTED+=("$c")
  # $! is the forked shell until it has exec'd setsid and setsid the binary
  # (same pid): wait for that, so a slow exec on a busy machine is neither
  # taken for an exit nor left running unseen.
  for ((i = 0; i < 1200; i++)); do
    exec_done "$pid" "$exe" && return 0
    component_pid "$c" >/dev/null || fail_up "$c exited before it started (see $LOGS/$c.log)"
    sleep 0.05
  done
  fail_up "$c did not exec $exe within 60s"
}

stop_component() {
  local c=$1 pid i
  if pid="$(component_pid "$c")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$c (pid $pid) did not stop after 15s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$RUN/$c.pid" "$RUN/$c.start" "$RUN/$c.exe"
}

stop_all() {
  local i c
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[$i]}
    # Containers outlive containerd (their shims are their parents): end them first.
    [[ $c == containerd ]] && node_kill_pods
    stop_component "$c"
  done
  node_cleanup
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

api_get() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER_URL$1"
}

healthz() { # NAME -> probes the component's own health endpoint
  case $1 in
    etcd) [[ "$(curl -fsS --max-time 3 "http://$HOST:$ETCD_PORT/health")" == *'"health":"true"'* ]] ;;
    kube-apiserver) [[ "$(api_get /readyz)" == ok ]] ;;
    kube-controller-manager) [[ "$(curl -fsS --max-time 3 --cacert "$PKI/ca.crt" "https://$HOST:$KCM_PORT/healthz")" == ok ]] ;;
    kube-scheduler) [[ "$(curl -fsS --max-time 3 --cacert "$PKI/ca.crt" "https://$HOST:$SCHEDULER_PORT/healthz")" == ok ]] ;;
    kwok) curl -fsS --max-time 3 "http://$HOST:$KWOK_PORT/healthz" >/dev/null ;;
    nodenet) in_node curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://$NODE_GW:$APISERVER_PORT/readyz" >/dev/null ;;
    containerd) "$NODE_BIN_DIR/ctr" --address "$NODE_DIR/containerd.sock" version >/dev/null ;;
    kubelet) [[ "$(in_node curl -fsS --max-time 3 http://127.0.0.1:10248/healthz)" == ok ]] ;;
    kube-proxy) in_node curl -fsS --max-time 3 http://127.0.0.1:10256/healthz >/dev/null ;;
  esac
}

is_up() {
  [[ -f "$MARKER" && -f "$STATE_DIR/up" && -x "$BIN_DIR/kubectl" ]] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null || return 1; done
  healthz kube-apiserver
}

log_tails() {
  local f
  for f in "$LOGS"/*.log; do
    [[ -f "$f" ]] || continue
    echo "===== tail -n 25 $f" >&2
    tail -n 25 "$f" >&2
  done
}

FAIL_REASON=""
fail_up() {
  FAIL_REASON="$*"
  log "ERROR: $*"
  exit 1   # on_up_exit (EXIT trap) prints the logs and stops the processes
}

UP_DONE=0
on_up_exit() {
  local rc=$?
  [[ $UP_DONE -eq 1 ]] && return 0
  log "cluster did not come up (exit $rc); component log tails follow"
  log_tails
  stop_all
  log "processes stopped; state and logs kept in $STATE_DIR (the next 'up' or 'down' removes them)"
  log "ERROR: cluster up failed: ${FAIL_REASON:-a command failed with exit $rc (see above)}"
}

# wait_for TIMEOUT DESCRIPTION CMD...: polls CMD, fails fast when a started
# component has died.
wait_for() {
  local timeout=$1 desc=$2 c
  local deadline=$((SECONDS + timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    for c in "${STARTED[@]}"; do
      component_pid "$c" >/dev/null || fail_up "$c exited while waiting for $desc (see $LOGS/$c.log)"
    done
    ((SECONDS < deadline)) || fail_up "timed out after ${timeout}s waiting for $desc"
    sleep 0.25
  done
}

gen_cert() { # NAME SUBJECT server|client [SUBJECT_ALT_NAMES [CA]]
  local n=$1 ca=${5:-ca}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$n.key" 2>/dev/null
  {
    echo "basicConstraints = critical,CA:FALSE"
    echo "keyUsage = critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage = ${3}Auth"
    [[ -z "${4:-}" ]] || echo "subjectAltName = $4"
  } > "$PKI/$n.ext"
  openssl req -new -key "$PKI/$n.key" -subj "$2" -out "$PKI/$n.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -sha256 -extfile "$PKI/$n.ext" -out "$PKI/$n.crt" 2>/dev/null
  rm -f "$PKI/$n.csr" "$PKI/$n.ext"
}

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  cp "$CONFIG_DIR/ca.cnf" "$PKI/ca.cnf"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -config "$PKI/ca.cnf" -key "$PKI/ca.key" -days 3650 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  local svc_ip
  svc_ip="$("$PYTHON" -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1], strict=False).hosts()))' "$SERVICE_CIDR")"
  gen_cert kube-apiserver "/CN=kube-apiserver" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$HOST,IP:$svc_ip$(
      [[ $REAL_NODE == 1 ]] && echo ",IP:$NODE_GW")"
  # Serving cert shared by kube-controller-manager and kube-scheduler.
  gen_cert components "/CN=agentfleet-components" server "DNS:localhost,IP:$HOST"
  gen_cert admin "/O=system:masters/CN=agentfleet-admin" client
  gen_cert kube-controller-manager "/CN=system:kube-controller-manager" client
  gen_cert kube-scheduler "/CN=system:kube-scheduler" client
  gen_cert kwok "/O=system:masters/CN=kwok-controller" client
  # The apiserver's client certificate at the real node's kubelet (logs, exec, port-forward).
  gen_cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" client
  # Separate front-proxy CA for the aggregation layer (requestheader auth), as
  # kubeadm does; without it the controller-manager and scheduler log errors.
  # Aggregated API servers (KEDA's metrics API in e2e/harness/keda.py) are
  # reached at their Service's endpoint (--enable-aggregator-routing): there is
  # no kube-proxy to carry a ClusterIP.
  sed 's/agentfleet-e2e-ca/agentfleet-e2e-front-proxy-ca/' "$PKI/ca.cnf" > "$PKI/front-proxy-ca.cnf"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/front-proxy-ca.key" 2>/dev/null
  openssl req -x509 -new -config "$PKI/front-proxy-ca.cnf" -key "$PKI/front-proxy-ca.key" -days 3650 -sha256 \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
  gen_cert front-proxy-client "/CN=front-proxy-client" client "" front-proxy-ca
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

write_kubeconfig() { # PATH USER CERTNAME [SERVER]
  local server="${4:-$APISERVER_URL}" user="$2" ca_data cert_data key_data
  ca_data="$(base64 -w0 < "$PKI/ca.crt")"
  cert_data="$(base64 -w0 < "$PKI/$3.crt")"
  key_data="$(base64 -w0 < "$PKI/$3.key")"
  render kubeconfig.yaml "$1" server user ca_data cert_data key_data
  chmod 600 "$1"
}

default_sa_exists() { kubectl_ -n default get serviceaccount default; }

nodes_untainted() {
  # The node lifecycle controller briefly taints new nodes node.kubernetes.io/not-ready.
  local taints
  taints="$(kubectl_ get nodes -l agentfleet.io/simulated=true -o jsonpath='{.items[*].spec.taints[*].key}')" || return 1
  [[ "$taints" != *node.kubernetes.io/* ]]
}

all_nodes_ready() {
  local want have
  want="$(wc -l < "$STATE_DIR/node-names")"
  have="$(kubectl_ get nodes -l agentfleet.io/simulated=true \
    -o jsonpath='{range .items[*]}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' | grep -c '^True$')" || return 1
  [[ "$have" -ge "$want" ]]
}

apply_nodes() {
  [[ "$TOPOLOGY" -ef "$STATE_DIR/topology.yaml" ]] || cp "$TOPOLOGY" "$STATE_DIR/topology.yaml"
  "$PYTHON" "$E2E_DIR/harness/nodes.py" "$TOPOLOGY" --names > "$STATE_DIR/node-names" \
    || fail_up "e2e/harness/nodes.py could not read topology $TOPOLOGY"
  "$PYTHON" "$E2E_DIR/harness/nodes.py" "$TOPOLOGY" > "$STATE_DIR/nodes.json" || fail_up "e2e/harness/nodes.py failed"
  kubectl_ apply -f "$STATE_DIR/nodes.json" >&2 || fail_up "kubectl apply of the topology's nodes failed"
}

cmd_up() {
  if is_up; then
    log "cluster already up ($APISERVER_URL, kubeconfig $KUBECONFIG_PATH)"
    return 0
  fi
  cmd_build
  ensure_runtime_tools
  [[ $REAL_NODE == 1 ]] && cmd_build_node
  [[ -f "$TOPOLOGY" ]] || die "topology file $TOPOLOGY not found"
  "$PYTHON" "$E2E_DIR/harness/nodes.py" "$TOPOLOGY" --names >/dev/null || die "invalid topology $TOPOLOGY"

  # Leftovers of a previous (failed or killed) run: stop and wipe them.
  if [[ -e "$STATE_DIR" ]]; then
    [[ -f "$MARKER" ]] || die "$STATE_DIR exists but is not an agentfleet cluster dir; refusing to touch it"
    log "cleaning up stale cluster state in $STATE_DIR"
    stop_all
    no_mounts_left || die "mounts remain under $STATE_DIR (see /proc/self/mountinfo); not removing it"
    rm -rf "$STATE_DIR"
  fi
  local p
  for p in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
    port_in_use "$p" && die "port $HOST:$p is already in use (set AGENTFLEET_*_PORT to move it)"
  done

  local start=$SECONDS
  mkdir -p "$STATE_DIR" "$RUN" "$LOGS" "$STATE_DIR/kwok-home" "$STATE_DIR/kcm" "$STATE_DIR/scheduler"
  touch "$MARKER"
  trap on_up_exit EXIT
  log "starting cluster in $STATE_DIR (Kubernetes $K8S_VERSION)"
  gen_pki
  write_kubeconfig "$KUBECONFIG_PATH" agentfleet-admin admin
  write_kubeconfig "$STATE_DIR/kcm/kubeconfig" system:kube-controller-manager kube-controller-manager
  write_kubeconfig "$STATE_DIR/scheduler/kubeconfig" system:kube-scheduler kube-scheduler
  write_kubeconfig "$STATE_DIR/kwok-home/kubeconfig" kwok-controller kwok

  # With a real node the apiserver advertises the address e2e/harness/nodenet.py serves
  # inside the node's namespace: the `kubernetes` Service's endpoint, which
  # kube-proxy carries for pods. Without one, nothing could reach an endpoint.
  local advertise="$HOST" reconciler=none node_flags=()
  [[ $REAL_NODE == 1 ]] && advertise="$NODE_GW" reconciler=lease
  # The apiserver reaches the real node's kubelet (kubectl logs, exec, port-forward) and its pods
  # (the pods and services proxy) through e2e/harness/nodenet.py's CONNECT proxy: their
  # addresses exist only inside the node's namespace. The proxy dials every other address outside.
  if [[ $REAL_NODE == 1 ]]; then
    render egress-selector.yaml "$STATE_DIR/egress-selector.yaml" EGRESS_SOCKET
    node_flags=(--egress-selector-config-file="$STATE_DIR/egress-selector.yaml"
      --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
      --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
      --kubelet-preferred-address-types=InternalIP,Hostname)
  fi
  start_component etcd \
    --name=agentfleet --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://$HOST:$ETCD_PORT" --advertise-client-urls="http://$HOST:$ETCD_PORT" \
    --listen-peer-urls="http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster="agentfleet=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync=true --snapshot-count=10000 --log-level=warn
  wait_for 30 "etcd health" healthz etcd

  start_component kube-apiserver \
    --etcd-servers="http://$HOST:$ETCD_PORT" \
    --bind-address="$HOST" --advertise-address="$advertise" --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/kube-apiserver.crt" --tls-private-key-file="$PKI/kube-apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type="$reconciler" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --enable-admission-plugins=PodNodeSelector,PodTolerationRestriction \
    --allow-privileged=true --profiling=false --cert-dir="$STATE_DIR/apiserver-certs" "${node_flags[@]}" \
    --v="$LOG_LEVEL"
  wait_for "$UP_TIMEOUT" "kube-apiserver /readyz" healthz kube-apiserver

  start_component kube-controller-manager \
    --kubeconfig="$STATE_DIR/kcm/kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kcm/kubeconfig" --authorization-kubeconfig="$STATE_DIR/kcm/kubeconfig" \
    --bind-address="$HOST" --secure-port="$KCM_PORT" \
    --tls-cert-file="$PKI/components.crt" --tls-private-key-file="$PKI/components.key" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --kube-api-qps=100 --kube-api-burst=200 --profiling=false --v="$LOG_LEVEL"
  start_component kube-scheduler \
    --kubeconfig="$STATE_DIR/scheduler/kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/scheduler/kubeconfig" --authorization-kubeconfig="$STATE_DIR/scheduler/kubeconfig" \
    --bind-address="$HOST" --secure-port="$SCHEDULER_PORT" \
    --tls-cert-file="$PKI/components.crt" --tls-private-key-file="$PKI/components.key" \
    --leader-elect=false --kube-api-qps=100 --kube-api-burst=200 --profiling=false --v="$LOG_LEVEL"
  # kwok: manages only Nodes annotated kwok.x-k8s.io/node=fake (what
  # e2e/harness/nodes.py generates); pods bound to them get Running/Ready and an IP
  # from --cidr (never routed anywhere: there is no kubelet or network).
  start_component kwok \
    --kubeconfig="$STATE_DIR/kwok-home/kubeconfig" --config="$BIN_DIR/$KWOK_STAGES" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$POD_CIDR" --node-ip="$HOST" --node-port="$KWOK_PORT" --server-address="$HOST:$KWOK_PORT" \
    --node-lease-duration-seconds=40

  wait_for 60 "the default namespace" kubectl_ get namespace default
  wait_for 60 "the default ServiceAccount" default_sa_exists
  apply_nodes
  wait_for 90 "all simulated nodes Ready" all_nodes_ready
  wait_for 60 "nodes free of not-ready taints" nodes_untainted
  local c
  [[ $REAL_NODE == 1 ]] && node_up
  for c in "${COMPONENTS[@]}"; do wait_for 60 "$c health" healthz "$c"; done
  date -u +%Y-%m-%dT%H:%M:%SZ > "$STATE_DIR/up"
  UP_DONE=1
  log "cluster up in $((SECONDS - start))s: $APISERVER_URL, $(wc -l < "$STATE_DIR/node-names") kwok nodes$(
    [[ $REAL_NODE == 1 ]] && echo " and the real node $NODE_NAME"); kubeconfig $KUBECONFIG_PATH"
}

# --------------------------------------------------------------------------
# the real node
# --------------------------------------------------------------------------
in_node() { nsenter "--net=$NETNS_PATH" "$@"; }

# cgroup directories of the node's tree, one per mounted hierarchy (v1) or the
# unified one (v2)
node_cgroup_dirs() {
  local d
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    if [[ -f "$d/cgroup.procs" ]]; then echo "${d%/}$CGROUP_ROOT"; fi
  done
}

node_cgroups_create() {
  local d parent
  while read -r d; do
    mkdir -p "$d"
    parent="$(dirname "$d")"
    # A new cpuset is empty: it takes its parent's CPUs and memory nodes.
    if [[ -f "$d/cpuset.cpus" && -z "$(cat "$d/cpuset.cpus")" ]]; then
      cat "$parent/cpuset.cpus" > "$d/cpuset.cpus"
      cat "$parent/cpuset.mems" > "$d/cpuset.mems"
    fi
  done < <(node_cgroup_dirs)
}

node_kill_pods() {
  # Every container process is in a cgroup under CGROUP_ROOT; each shim of this
  # node's containerd names its socket on its command line.
  local round pid f found
  for ((round = 0; round < 20; round++)); do
    found=0
    while read -r f; do
      # (a cgroup may vanish between the find and the read: its container has just exited)
      while read -r pid; do
        kill -KILL "$pid" 2>/dev/null || true
        found=1
      done < <(cat "$f" 2>/dev/null)
    done < <(node_cgroup_dirs | while read -r d; do if [[ -d "$d" ]]; then find "$d" -name cgroup.procs; fi; done)
    # (one find, not a readlink per process: forks are slow on a busy machine)
    while read -r f; do
      f="${f%/exe}"
      tr '\0' ' ' < "$f/cmdline" 2>/dev/null | grep -qF -- "$NODE_DIR/containerd.sock" || continue
      # The shims' sockets are outside the state dir (/run/containerd/s/), in the node's
      # namespace (unix sockets are per network namespace): note them for node_cleanup.
      awk '$NF ~ "^/run/containerd/" { print $NF }' "$f/net/unix" >> "$NODE_DIR/shim-sockets" 2>/dev/null || true
      kill -KILL "${f#/proc/}" 2>/dev/null || true
      found=1
    done < <(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$NODE_BIN_DIR/containerd-shim-runc-v2" 2>/dev/null)
    [[ $found -eq 0 ]] && return 0
    sleep 0.2
  done
  log "WARNING: processes of the real node's pods survived SIGKILL for 4s"
}

# mount points under the state dir (containers' root file systems, volumes,
# pod network namespaces), deepest first
state_mounts() {
  awk -v dir="$STATE_DIR/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

no_mounts_left() { [[ -z "$(state_mounts)" ]]; }

node_cleanup() {
  local m d i line
  node_kill_pods
  for ((i = 0; i < 5; i++)); do
    no_mounts_left && break
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done < <(state_mounts)
  done
  while read -r d; do
    if [[ -d "$d" ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    if [[ -d "$d" ]]; then log "WARNING: could not remove cgroup $d"; fi
  done < <(node_cgroup_dirs)
  if [[ -e "$NETNS_PATH" ]]; then ip netns del "$NETNS" 2>/dev/null || log "WARNING: could not delete netns $NETNS"; fi
  # What the kubelet and the CNI plugins leave outside the state dir.
  if [[ -d /var/log/containers ]]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$NODE_DIR/*" -delete
    [[ -f "$NODE_DIR/had-var-log-containers" ]] || rmdir /var/log/containers 2>/dev/null || true
  fi
  if [[ -f "$NODE_DIR/shim-sockets" ]]; then
    sort -u "$NODE_DIR/shim-sockets" | while read -r m; do rm -f "$m"; done
    rm -f "$NODE_DIR/shim-sockets"
  fi
  if [[ ! -f "$NODE_DIR/had-run-containerd" && -d /run/containerd ]]; then
    find /run/containerd -depth -type d -empty -delete 2>/dev/null || true
  fi
  if [[ -d /var/lib/cni ]]; then
    # libcni's cache: "<network>-<sandbox id>-<interface>", for our bridge network and containerd's
    # loopback one; the sandbox ids are this containerd's.
    find /var/lib/cni -depth -name "*$NETNS*" -exec rm -rf {} + 2>/dev/null || true
    # (none without a real node, or before its containerd ran: find would fail the pipeline)
    if [[ -d "$NODE_DIR/containerd" ]]; then
      find "$NODE_DIR/containerd" -path '*/io.containerd.grpc.v1.cri/sandboxes/*' -prune -type d -printf '%f\n' \
        | sort -u | while read -r m; do rm -f /var/lib/cni/results/*-"$m"-*; done
    fi
    [[ -f "$NODE_DIR/had-var-lib-cni" ]] || find /var/lib/cni -depth -type d -empty -delete 2>/dev/null || true
  fi
  if [[ -f "$NODE_DIR/host-sysctls" ]]; then
    while read -r line; do sysctl -qw "$line" || log "WARNING: could not restore $line"; done < "$NODE_DIR/host-sysctls"
    rm -f "$NODE_DIR/host-sysctls"
  fi
}

node_ready() {
  local ready taints
  ready="$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" || return 1
  taints="$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.spec.taints[*].key}')" || return 1
  [[ "$ready" == True && "$taints" != *node.kubernetes.io/* ]]
}

node_up() {
  local start=$SECONDS s
  mkdir -p "$NODE_DIR"/{kubelet,containerd,cni/net.d,cni-ipam,pod-logs,volumes}
  [[ -d /var/log/containers ]] && touch "$NODE_DIR/had-var-log-containers"
  [[ -d /var/lib/cni ]] && touch "$NODE_DIR/had-var-lib-cni"
  [[ -d /run/containerd ]] && touch "$NODE_DIR/had-run-containerd"
  for s in "${HOST_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done > "$NODE_DIR/host-sysctls"
  [[ -e "$NETNS_PATH" ]] && { ip netns del "$NETNS" || fail_up "could not delete the stale netns $NETNS"; }
  ip netns add "$NETNS" || fail_up "ip netns add $NETNS failed"
  # The kubelet refuses a loopback node address (and dummy links may be
  # unavailable): a veth pair with both ends inside carries both addresses.
  in_node sh -ec "
    ip link set lo up
    ip link add afgw type veth peer name afnode
    ip addr add $NODE_GW/24 dev afgw
    ip addr add $NODE_IP/24 dev afnode
    ip link set afgw up
    ip link set afnode up
    ip route add default dev afnode
    sysctl -qw net.ipv4.ip_forward=1" || fail_up "could not set up the node's network namespace $NETNS"
  node_cgroups_create || fail_up "could not create the node's cgroups under $CGROUP_ROOT"

  gen_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client
  gen_cert kubelet-serving "/CN=$NODE_NAME" server "DNS:$NODE_NAME,IP:$NODE_IP"
  gen_cert kube-proxy "/CN=system:kube-proxy" client
  local inside="https://$NODE_GW:$APISERVER_PORT"
  write_kubeconfig "$NODE_DIR/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet "$inside"
  write_kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "$inside"
  : > "$NODE_DIR/resolv.conf"   # pods' upstream resolvers: none (nothing outside is reachable)

  render containerd.toml "$NODE_DIR/containerd.toml" NODE_DIR PAUSE_IMAGE
  render cni.conflist "$NODE_DIR/cni/net.d/10-agentfleet.conflist" NETNS NODE_DIR NODE_POD_CIDR
  render kubelet.yaml "$NODE_DIR/kubelet.yaml" CGROUP_ROOT NODE_DIR NODE_GW NODE_IP PKI REAL_NODE_LABEL
  render kube-proxy.yaml "$NODE_DIR/kube-proxy.yaml" NODE_DIR NODE_NAME NODE_POD_CIDR

  start_component nodenet "$E2E_DIR/harness/nodenet.py" --netns "$NETNS_PATH" --address "$NODE_GW" \
    --apiserver-port "$APISERVER_PORT" --ca "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    --egress-socket "$EGRESS_SOCKET" --inside "$NODE_GW/24,$NODE_POD_CIDR"
  wait_for 30 "the apiserver inside the node's namespace" healthz nodenet
  # containerd finds its runc shim on PATH; runc and the CNI plugins are Debian's.
  PATH="$NODE_BIN_DIR:$PATH" start_component containerd --config "$NODE_DIR/containerd.toml"
  wait_for 60 "containerd" healthz containerd
  node_import_archive "$NODE_BIN_DIR/pause.tar"
  start_kubelet
  start_component kube-proxy --config="$NODE_DIR/kube-proxy.yaml" --v="$LOG_LEVEL"
  wait_for 120 "the real node $NODE_NAME Ready" node_ready
  log "real node $NODE_NAME Ready in $((SECONDS - start))s (netns $NETNS, cgroups $CGROUP_ROOT)"
}

start_kubelet() {
  start_component kubelet --config="$NODE_DIR/kubelet.yaml" --kubeconfig="$NODE_DIR/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --root-dir="$NODE_DIR/kubelet" \
    --node-labels="$REAL_NODE_LABEL=true" --v="$LOG_LEVEL"
}

# The kubelet stopped (SIGTERM) and started again; its pods' containers keep running.
cmd_restart_kubelet() {
  stop_component kubelet
  start_kubelet
  wait_for 60 "the kubelet's health" healthz kubelet
  log "kubelet restarted"
}

node_import_archive() { # DOCKER_ARCHIVE
  "$NODE_BIN_DIR/ctr" --address "$NODE_DIR/containerd.sock" -n k8s.io images import --local "$1" >&2 \
    || die "ctr images import $1 failed"
}

node_import() { # IMAGE... from podman's storage
  local ref tmp have missing=()
  # Listed once, not piped into `grep -q`: grep leaves at the first match, ctr's next write then
  # fails (SIGPIPE), and under pipefail an image already there counted as missing (seen: a 1 GB
  # image imported again, minutes under load).
  have="$("$NODE_BIN_DIR/ctr" --address "$NODE_DIR/containerd.sock" -n k8s.io images ls -q)" \
    || die "ctr images ls failed"
  for ref in "$@"; do
    if grep -qxF "$ref" <<<"$have"; then
      log "$ref is already on the real node"
    else
      missing+=("$ref")
    fi
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  tmp="$(mktemp -d "$NODE_DIR/.import.XXXXXX")"
  # One archive for all: images built on one another store their shared layers once.
  podman save --quiet --multi-image-archive --format docker-archive -o "$tmp/images.tar" "${missing[@]}" \
    || die "podman save ${missing[*]} failed"
  node_import_archive "$tmp/images.tar"
  rm -rf "$tmp"
  log "imported ${missing[*]} into the real node"
}

cmd_down() {
  if [[ ! -e "$STATE_DIR" ]]; then
    log "cluster is not running (no $STATE_DIR)"
    return 0
  fi
  [[ -f "$MARKER" ]] || die "$STATE_DIR is not an agentfleet cluster dir; refusing to delete it"
  stop_all
  no_mounts_left || die "mounts remain under $STATE_DIR (see /proc/self/mountinfo); not removing it"
  rm -rf "$STATE_DIR"
  log "cluster stopped, $STATE_DIR removed"
}

cmd_status() {
  local c pid rc=0
  if is_up; then echo "up: $APISERVER_URL (kubeconfig $KUBECONFIG_PATH)"; else echo "down"; rc=1; fi
  if [[ -f "$MARKER" ]]; then
    for c in "${COMPONENTS[@]}"; do
      if pid="$(component_pid "$c")"; then
        if healthz "$c" >/dev/null 2>&1; then echo "  $c: running (pid $pid), healthy"; else echo "  $c: running (pid $pid), NOT healthy"; fi
      else
        echo "  $c: not running"
      fi
    done
  fi
  return $rc
}

cmd_env() {
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
  # shellcheck disable=SC2016 # $PATH is for the eval-ing shell to expand
  printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
}

cmd_info() { # machine-readable facts for e2e/conftest.py (plain JSON: printf, no interpreter)
  local topology="$TOPOLOGY" real_node=null
  # the topology the running cluster was created from (else the configured one)
  [[ -f "$STATE_DIR/topology.yaml" ]] && topology="$STATE_DIR/topology.yaml"
  if [[ "$REAL_NODE" == 1 ]]; then
    real_node="$(printf '{"name": %s, "netns": %s, "address": %s, "gateway": %s, "pod_logs": %s, "volumes": %s, "containerd_socket": %s, "ctr": %s}' \
      "$(json_str "$NODE_NAME")" "$(json_str "$NETNS_PATH")" "$(json_str "$NODE_IP")" "$(json_str "$NODE_GW")" \
      "$(json_str "$NODE_DIR/pod-logs")" "$(json_str "$NODE_DIR/volumes")" "$(json_str "$NODE_DIR/containerd.sock")" \
      "$(json_str "$NODE_BIN_DIR/ctr")")"
  fi
  printf '{\n'
  printf ' "%s": %s,\n' \
    k8s_version "$(json_str "$K8S_VERSION")" etcd_version "$(json_str "$ETCD_VERSION")" \
    kwok_version "$(json_str "$KWOK_VERSION")" state_dir "$(json_str "$STATE_DIR")" bin_dir "$(json_str "$BIN_DIR")" \
    kubeconfig "$(json_str "$KUBECONFIG_PATH")" kubectl "$(json_str "$BIN_DIR/kubectl")" logs_dir "$(json_str "$LOGS")" \
    topology "$(json_str "$topology")" apiserver_url "$(json_str "$APISERVER_URL")" \
    ca_cert "$(json_str "$PKI/ca.crt")" admin_cert "$(json_str "$PKI/admin.crt")" admin_key "$(json_str "$PKI/admin.key")"
  printf ' "health_urls": {"etcd": %s, "kube-apiserver": %s, "kube-controller-manager": %s, "kube-scheduler": %s, "kwok": %s},\n' \
    "$(json_str "http://$HOST:$ETCD_PORT/health")" "$(json_str "$APISERVER_URL/readyz")" \
    "$(json_str "https://$HOST:$KCM_PORT/healthz")" "$(json_str "https://$HOST:$SCHEDULER_PORT/healthz")" \
    "$(json_str "http://$HOST:$KWOK_PORT/healthz")"
  # the real node (null: kwok nodes only)
  printf ' "real_node": %s\n}\n' "$real_node"
}

cmd_logs() {
  local c
  for c in "${@:-${COMPONENTS[@]}}"; do
    [[ -f "$LOGS/$c.log" ]] && { echo "===== $LOGS/$c.log"; tail -n "${AGENTFLEET_LOG_LINES:-60}" "$LOGS/$c.log"; }
  done
}

with_lock() { # serialise up/down/nodes for one state dir
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  flock -w 900 9 || die "could not lock $STATE_DIR.lock"
  "$@"
}

usage() {
  cat <<EOF
usage: $0 COMMAND
  build    compile etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
           kubectl and kwok into $BIN_DIR (no-op when already built)
  up       build if needed, start the cluster, create the topology's nodes, wait
           until everything is Ready (no-op when already up)
  down     stop every process and remove $STATE_DIR
  status   print whether the cluster is up (exit 0) or down (exit 1)
  env      print 'export KUBECONFIG=...' and 'export PATH=...' lines for eval
  nodes    (re)apply the topology's nodes to a running cluster
  info     print paths, URLs and versions as JSON
  logs [COMPONENT...]  tail the component logs
  import IMAGE...  copy images from the local container storage (podman) into
           the real node's containerd (pods use them with imagePullPolicy Never)
  build-node  build containerd and the pause image into $NODE_BIN_DIR
  restart-kubelet  stop the real node's kubelet and start it again (its pods keep running)
EOF
}

case "${1:-}" in
  build) cmd_build ;;
  go) ensure_go ;;
  up) with_lock cmd_up ;;
  down) with_lock cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  info) cmd_info ;;
  nodes) is_up || die "cluster is not up"; with_lock apply_nodes ;;
  logs) shift; cmd_logs "$@" ;;
  import) shift; is_up || die "cluster is not up"; [[ $REAL_NODE == 1 ]] || die "no real node"; node_import "$@" ;;
  build-node) cmd_build_node ;;
  restart-kubelet)
    is_up || die "cluster is not up"
    [[ $REAL_NODE == 1 ]] || die "no real node"
    with_lock cmd_restart_kubelet ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
