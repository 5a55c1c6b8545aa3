#!/usr/bin/env bash
# agentfleet e2e harness: a real, local Kubernetes control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) plus the kwok
# controller, which makes simulated GPU nodes Ready and runs the pods bound to
# them (Running/Ready with a pod IP) without any container runtime.
#
# Usage: e2e/cluster.sh build|go|up|down|status|env|nodes|logs   (go: only install Go)
#
# Why processes are started directly instead of `kwokctl --runtime binary`:
# kwokctl wants to download binaries unless every path is overridden, binds
# to 0.0.0.0 by default, signs everything with one admin cert and keeps its
# state under ~/.kwok.  Starting six processes ourselves is ~150 lines of
# bash, keeps every flag visible (all listeners on 127.0.0.1), and gives us
# plain pid files and logs under $AGENTFLEET_CLUSTER_DIR.
#
# Nothing here downloads a prebuilt binary: everything is compiled from Go
# modules pinned by e2e/k8s/go.mod + go.sum.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GOMOD_DIR="$E2E_DIR/k8s"        # k8s.io/kubernetes + etcd
KWOK_GOMOD_DIR="$E2E_DIR/kwok"  # sigs.k8s.io/kwok (separate dependency graph)

# Pinned versions. They must agree with e2e/k8s/go.mod and e2e/kwok/go.mod
# (checked by `build`).
K8S_VERSION="v1.36.3"
ETCD_VERSION="v3.6.8"
KWOK_VERSION="v0.8.0"
# Bump when the build recipe changes, to force a rebuild of the cache.
BUILD_RECIPE="1"

CACHE_ROOT="${AGENTFLEET_CACHE:-$HOME/.cache/agentfleet}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION/bin"
STATE_DIR="${AGENTFLEET_CLUSTER_DIR:-/tmp/agentfleet-cluster}"
TOPOLOGY="${AGENTFLEET_TOPOLOGY:-$E2E_DIR/topology.yaml}"
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
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
KWOK_STAGES="kwok-stages.yaml"   # kwok's stock "fast" stages, copied from the module

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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
      k8s.io/kubernetes/cmd/kubectl || exit 1
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

start_component() { # NAME ARGS...
  local c=$1; shift
  local exe="$BIN_DIR/$c" pid i
  echo "$exe" > "$RUN/$c.exe"
  # setsid: own session, so a Ctrl-C in the terminal (or pytest) that ran
  # `up` does not take the cluster down with it. All fds are redirected so
  # callers capturing our output do not hang on inherited pipes; fd 9 (the
  # state-dir lock) is closed so the daemons do not keep holding it.
  if [[ $c == kwok ]]; then
    # kwok always reads ~/.kwok/kwok.yaml if present: give it its own HOME.
    setsid env HOME="$STATE_DIR/kwok-home" "$exe" "$@" >>"$LOGS/$c.log" 2>&1 </dev/null 9>&- &
  else
    setsid "$exe" "$@" >>"$LOGS/$c.log" 2>&1 </dev/null 9>&- &
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
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[$i]}"; done
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
  cat > "$PKI/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = agentfleet-e2e-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -config "$PKI/ca.cnf" -key "$PKI/ca.key" -days 3650 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  local svc_ip
  svc_ip="$("$PYTHON" -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1], strict=False).hosts()))' "$SERVICE_CIDR")"
  gen_cert kube-apiserver "/CN=kube-apiserver" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$HOST,IP:$svc_ip"
  # Serving cert shared by kube-controller-manager and kube-scheduler.
  gen_cert components "/CN=agentfleet-components" server "DNS:localhost,IP:$HOST"
  gen_cert admin "/O=system:masters/CN=agentfleet-admin" client
  gen_cert kube-controller-manager "/CN=system:kube-controller-manager" client
  gen_cert kube-scheduler "/CN=system:kube-scheduler" client
  gen_cert kwok "/O=system:masters/CN=kwok-controller" client
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

write_kubeconfig() { # PATH USER CERTNAME
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentfleet-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$3.crt")
    client-key-data: $(base64 -w0 < "$PKI/$3.key")
contexts:
- name: agentfleet-e2e
  context:
    cluster: agentfleet-e2e
    user: $2
    namespace: default
current-context: agentfleet-e2e
EOF
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
  [[ -f "$TOPOLOGY" ]] || die "topology file $TOPOLOGY not found"
  "$PYTHON" "$E2E_DIR/harness/nodes.py" "$TOPOLOGY" --names >/dev/null || die "invalid topology $TOPOLOGY"

  # Leftovers of a previous (failed or killed) run: stop and wipe them.
  if [[ -e "$STATE_DIR" ]]; then
    [[ -f "$MARKER" ]] || die "$STATE_DIR exists but is not an agentfleet cluster dir; refusing to touch it"
    log "cleaning up stale cluster state in $STATE_DIR"
    stop_all
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

  start_component etcd \
    --name=agentfleet --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://$HOST:$ETCD_PORT" --advertise-client-urls="http://$HOST:$ETCD_PORT" \
    --listen-peer-urls="http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster="agentfleet=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync=true --snapshot-count=10000 --log-level=warn
  wait_for 30 "etcd health" healthz etcd

  start_component kube-apiserver \
    --etcd-servers="http://$HOST:$ETCD_PORT" \
    --bind-address="$HOST" --advertise-address="$HOST" --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/kube-apiserver.crt" --tls-private-key-file="$PKI/kube-apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type=none \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --allow-privileged=true --profiling=false --cert-dir="$STATE_DIR/apiserver-certs" --v="$LOG_LEVEL"
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
  for c in "${COMPONENTS[@]}"; do wait_for 60 "$c health" healthz "$c"; done
  date -u +%Y-%m-%dT%H:%M:%SZ > "$STATE_DIR/up"
  UP_DONE=1
  log "cluster up in $((SECONDS - start))s: $APISERVER_URL, $(wc -l < "$STATE_DIR/node-names") nodes; kubeconfig $KUBECONFIG_PATH"
}

cmd_down() {
  if [[ ! -e "$STATE_DIR" ]]; then
    log "cluster is not running (no $STATE_DIR)"
    return 0
  fi
  [[ -f "$MARKER" ]] || die "$STATE_DIR is not an agentfleet cluster dir; refusing to delete it"
  stop_all
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

cmd_info() { # machine-readable facts for e2e/conftest.py
  "$PYTHON" - <<EOF
import json
print(json.dumps({
  "k8s_version": "$K8S_VERSION", "etcd_version": "$ETCD_VERSION", "kwok_version": "$KWOK_VERSION",
  "state_dir": "$STATE_DIR", "bin_dir": "$BIN_DIR", "kubeconfig": "$KUBECONFIG_PATH",
  "kubectl": "$BIN_DIR/kubectl", "logs_dir": "$LOGS",
  # the topology the running cluster was created from (else the configured one)
  "topology": "$( [[ -f "$STATE_DIR/topology.yaml" ]] && echo "$STATE_DIR/topology.yaml" || echo "$TOPOLOGY")",
  "apiserver_url": "$APISERVER_URL",
  "health_urls": {
    "etcd": "http://$HOST:$ETCD_PORT/health",
    "kube-apiserver": "$APISERVER_URL/readyz",
    "kube-controller-manager": "https://$HOST:$KCM_PORT/healthz",
    "kube-scheduler": "https://$HOST:$SCHEDULER_PORT/healthz",
    "kwok": "http://$HOST:$KWOK_PORT/healthz",
  },
  "ca_cert": "$PKI/ca.crt", "admin_cert": "$PKI/admin.crt", "admin_key": "$PKI/admin.key",
}, indent=1))
EOF
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
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
