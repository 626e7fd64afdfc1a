#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, for trackstack's tests only.
#
# Usage: tests/k8s/cluster.sh up|build|down|status|env|load IMAGE...
#   up      build what is missing (cached), then start etcd, the control plane,
#           a private containerd, kubelet, kube-proxy and CoreDNS; idempotent
#   build   only build what is missing (CI starts it early, at low priority)
#   down    stop all of it and remove its state, bridge, iptables rules and
#           netns; the host's Docker engine is never touched
#   status  say which parts run and whether the node is Ready
#   env     print `export KUBECONFIG=...` (eval it)
#   load    copy images from the host's Docker engine into the node (skips
#           those already there); pods must use imagePullPolicy: Never
#
# Binaries and stand-in images are cached under $TRACKSTACK_TESTBED_CACHE/k8s
# (default /var/cache/trackstack-testbed/k8s); see tests/k8s/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/daemons.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/daemons.sh"

K8S_VERSION=v1.34.4
COREDNS_VERSION=v1.12.1            # what kubeadm v1.34 deploys
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:$COREDNS_VERSION

CACHE=${TRACKSTACK_TESTBED_CACHE:-/var/cache/trackstack-testbed}/k8s
BIN=$CACHE/bin
LOGS=$CACHE/logs
RUN=$CACHE/run                     # everything a running cluster owns; gone after down
KUBECONFIG_OUT=$CACHE/kubeconfig
SYSCTL_SNAPSHOT=$CACHE/sysctl.before
CONTEXT=trackstack-test
NODE=trackstack-k8s

# Addresses: nothing here overlaps Docker's pools (172.17+/16, 192.168/20),
# the swarm test bed (10.231.0.0/24) or the host's own networks.
BRIDGE=tsk8s0
POD_CIDR=10.244.0.0/16
NODE_POD_RANGE=10.244.0.0/24
NODE_IP=10.244.0.1                 # the pod bridge's gateway; also the API's address
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
API_PORT=6443
ETCD_CLIENT=127.0.0.1:12379        # not 2379/2380: leave the usual ports to others
ETCD_PEER=127.0.0.1:12380
IMAGES=$CACHE/containerd-root     # the node's containerd root: its images outlive `down`
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
# Held shared around every read of the host's Docker engine; a test that restarts that
# engine holds it exclusively (tests/conftest.py, engine_lock), so a bed running beside it waits.
ENGINE_LOCK=${TRACKSTACK_TEST_ENGINE_LOCK:-/run/trackstack-test-engine.lock}
POD_CGROUP=k8s.io                  # where containerd's CRI puts pods (cgroupsPerQOS: false)
FW_CHAIN=TSK8S-FORWARD
FW_COMMENT=trackstack-k8s

# The processes `up` starts, in start order; `down` stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# Host sysctls that kubelet and kube-proxy may change; `down` puts them back.
SYSCTLS=(net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic
         kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
         net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)

t_start=$SECONDS
# Progress goes to stderr so that `eval "$(cluster.sh up)"` sees only the export.
log() { printf '[k8s +%3ss] %s\n' "$((SECONDS - t_start))" "$*" >&2; }
die() { printf '[k8s] ERROR: %s\n' "$*" >&2; exit 1; }

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }
ctr_k8s() { ctr -a "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# wait_for SECONDS WHAT COMMAND... -- poll once a second until COMMAND succeeds
wait_for() {
  local limit=$1 what=$2 t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < limit)) || die "$what not ready after ${limit}s (logs: $LOGS)"
    sleep 1
  done
  log "$what ready after $((SECONDS - t0))s"
}

# Other engineers share this 2-core machine: heavy steps wait while they benchmark.
wait_bench_quiet() {
  while [[ -e /work/BENCH_QUIET ]]; do
    log "/work/BENCH_QUIET exists; waiting before a CPU-heavy step"
    sleep 30
  done
}

# --- build (once, cached) ----------------------------------------------------
ensure_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  command -v containerd >/dev/null || missing+=(containerd)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  bash "$here/../apt-install.sh" "${missing[@]}"
}

go_env() {
  export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || die "Go is needed to build the Kubernetes binaries"
}

# binary_reports BINARY TEXT ARGS... -- does `BINARY ARGS...` print TEXT?
# (Output read whole: `| grep -q` would SIGPIPE the binary and fail under pipefail.)
binary_reports() {
  local bin=$BIN/$1 text=$2 out
  shift 2
  [[ -x $bin ]] && out=$("$bin" "$@" 2>/dev/null) && [[ $out == *"$text"* ]]
}

k8s_binary_current() { # NAME -> built from $K8S_VERSION?
  if [[ $1 == kubectl ]]; then
    binary_reports kubectl "Client Version: $K8S_VERSION" version --client
  else
    binary_reports "$1" "Kubernetes $K8S_VERSION" --version
  fi
}

build_k8s_binaries() {
  local name t0 ldflags v=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
  ldflags+=" -X $v.gitTreeState=clean -X $cv.gitVersion=$K8S_VERSION -X $cv.gitMajor=1 -X $cv.gitMinor=$minor"
  for name in "${K8S_BINARIES[@]}"; do
    if k8s_binary_current "$name"; then continue; fi
    go_env; wait_bench_quiet
    t0=$SECONDS
    log "building $name $K8S_VERSION (Go module proxy; the first one takes ~10 min or more)"
    (cd "$here/gomod" && CGO_ENABLED=0 GOTOOLCHAIN=local nice -n 19 \
       go build -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "k8s.io/kubernetes/cmd/$name") \
       >"$LOGS/build-$name.log" 2>&1 || { tail -n 30 "$LOGS/build-$name.log" >&2; die "go build of $name failed"; }
    mv "$BIN/$name.tmp" "$BIN/$name"
    log "built $name in $((SECONDS - t0))s"
  done
}

build_coredns() {
  binary_reports coredns "CoreDNS-${COREDNS_VERSION#v}" -version && return 0
  go_env; wait_bench_quiet
  local t0=$SECONDS
  log "building coredns $COREDNS_VERSION (Go module proxy)"
  # Its go.mod has no replace directives, so `go install mod@version` works.
  CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN=$BIN nice -n 19 \
    go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" \
    >"$LOGS/build-coredns.log" 2>&1 || { tail -n 30 "$LOGS/build-coredns.log" >&2; die "go install of coredns failed"; }
  log "built coredns in $((SECONDS - t0))s"
}

build_pause() {
  [[ -x $BIN/pause ]] && return 0
  go_env
  log "building the pause stand-in"
  (cd "$here/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local nice -n 19 \
     go build -trimpath -ldflags "-s -w" -o "$BIN/pause" main.go)
}

# standin_image REF BINARY -- a FROM-scratch image whose entrypoint is BINARY
standin_image() {
  local ref=$1 binary=$2 ctx
  docker image inspect "$ref" >/dev/null 2>&1 && return 0
  log "building stand-in image $ref"
  ctx=$(mktemp -d)
  cp "$BIN/$binary" "$ctx/$binary"
  printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$binary" "$binary" "$binary" >"$ctx/Dockerfile"
  docker build -q --label org.trackstack.standin=true --label "org.trackstack.standin.ref=$ref" \
    -t "$ref" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build of $ref failed"; }
  rm -rf "$ctx"
}

build_all() {
  mkdir -p "$BIN" "$LOGS"
  ensure_packages
  build_k8s_binaries
  build_coredns
  build_pause
  standin_image "$PAUSE_IMAGE" pause
  standin_image "$COREDNS_IMAGE" coredns
}

# --- configuration -------------------------------------------------------------
write_pki() {
  local pki=$RUN/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=trackstack-test-ca \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat >apiserver.ext <<EXT
subjectAltName = IP:$NODE_IP, IP:$API_SERVICE_IP, IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage = serverAuth
EXT
    printf 'extendedKeyUsage = clientAuth\n' >client.ext
    # sign NAME SUBJECT EXTFILE
    sign() {
      openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$3" -out "$1.crt" 2>/dev/null
    }
    sign apiserver /CN=kube-apiserver apiserver.ext
    # The API server's identity towards kubelet (logs, exec, port-forward).
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client.ext
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

# kubeconfig FILE USER TOKEN -- context $CONTEXT, trusting our CA
write_kubeconfig() {
  cat >"$1" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: $CONTEXT
    cluster:
      server: https://$NODE_IP:$API_PORT
      certificate-authority-data: $(base64 -w0 "$RUN/pki/ca.crt")
users:
  - name: $2
    user:
      token: $3
contexts:
  - name: $CONTEXT
    context: {cluster: $CONTEXT, user: $2}
current-context: $CONTEXT
YAML
  chmod 600 "$1"
}

write_config() {
  mkdir -p "$RUN"/{etcd,kubelet,pids,cni/net.d,cni/ipam,containerd,pv}
  write_pki
  local admin_token node_token
  admin_token=$(openssl rand -hex 16)
  node_token=$(openssl rand -hex 16)
  # token,user,uid,"groups"
  cat >"$RUN/pki/tokens.csv" <<CSV
$admin_token,trackstack-admin,trackstack-admin,"system:masters"
$node_token,system:node:$NODE,system:node:$NODE,"system:nodes"
CSV
  chmod 600 "$RUN/pki/tokens.csv"
  write_kubeconfig "$RUN/admin.kubeconfig" trackstack-admin "$admin_token"
  write_kubeconfig "$RUN/kubelet.kubeconfig" "system:node:$NODE" "$node_token"

  cat >"$RUN/containerd/config.toml" <<TOML
# A containerd of the test bed's own; the host's Docker engine keeps its own.
version = 2
root = "$IMAGES"
state = "$RUN/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Pod sandboxes ask for a negative OOM score; without CAP_SYS_RESOURCE
  # (this machine's sandbox) runc then fails unless containerd clamps it.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state, not in the host's /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
TOML

  cat >"$RUN/cni/net.d/10-trackstack.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "trackstack-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_RANGE", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

  cat >"$RUN/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $RUN/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# This machine has cgroup v1 only and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $RUN/pod-logs
# Imported images can't be pulled again: never garbage-collect them, and
# don't evict pods because a shared disk is fuller than a real node's would be.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
serializeImagePulls: false
YAML

  cat >"$RUN/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables                       # the kernel has no IPVS
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
clientConnection: {kubeconfig: $RUN/admin.kubeconfig}
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [127.0.0.0/8, $NODE_IP/32]   # never on eth0
iptables: {localhostNodePorts: true}
# 0 = leave the host's conntrack sysctls as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# --- processes -----------------------------------------------------------------
pid_of() { cat "$RUN/pids/$1.pid" 2>/dev/null; }
running() { local pid; pid=$(pid_of "$1") && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# start NAME COMMAND... -- detached, logging to $LOGS/NAME.log, pid in $RUN/pids
start() {
  local name=$1
  shift
  if running "$name"; then return 0; fi
  # nice 10: an idle cluster should not slow other people's tests on 2 cores.
  (close_fds && exec setsid nice -n 10 "$@") >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
  log "started $name (pid $!)"
}

api_ready() { kubectl get --raw /readyz >/dev/null; }
node_ready() {
  [[ $(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

start_cluster() {
  local token_file=$RUN/pki/tokens.csv
  start etcd etcd --name trackstack --data-dir "$RUN/etcd" \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "trackstack=http://$ETCD_PEER" --listen-metrics-urls ""
  wait_for 60 etcd curl -fsS "http://$ETCD_CLIENT/health"

  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://$ETCD_CLIENT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cert-dir "$RUN/pki" \
    --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
    --client-ca-file "$RUN/pki/ca.crt" --token-auth-file "$token_file" \
    --authorization-mode Node,RBAC --allow-privileged \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$RUN/pki/sa.pub" --service-account-signing-key-file "$RUN/pki/sa.key" \
    --kubelet-client-certificate "$RUN/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$RUN/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP --profiling=false
  wait_for 180 kube-apiserver api_ready

  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$RUN/admin.kubeconfig" \
    --leader-elect=false --secure-port 0 --service-account-private-key-file "$RUN/pki/sa.key" \
    --root-ca-file "$RUN/pki/ca.crt" --cluster-name "$CONTEXT" --profiling=false
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$RUN/admin.kubeconfig" \
    --leader-elect=false --secure-port 0 --profiling=false

  start containerd containerd --config "$RUN/containerd/config.toml"
  wait_for 60 containerd ctr -a "$CONTAINERD_SOCK" version
  remove_containers   # an earlier cluster's, if its `down` could not remove them
  load_images "$PAUSE_IMAGE" "$COREDNS_IMAGE"

  start kubelet "$BIN/kubelet" --config "$RUN/kubelet/config.yaml" --kubeconfig "$RUN/kubelet.kubeconfig" \
    --root-dir "$RUN/kubelet" --hostname-override "$NODE" --node-ip "$NODE_IP"
  wait_for 180 "node $NODE" node_ready

  start kube-proxy "$BIN/kube-proxy" --config "$RUN/kube-proxy.yaml"
  wait_for 60 kube-proxy curl -fsS http://127.0.0.1:10256/healthz

  sed -e "s|__COREDNS_IMAGE__|$COREDNS_IMAGE|" -e "s|__DNS_IP__|$DNS_IP|" "$here/manifests/coredns.yaml" \
    | kubectl apply -f - >/dev/null
  wait_for 180 CoreDNS kubectl -n kube-system rollout status deployment/coredns --timeout=5s
}

# import_image REF -- from the host's Docker engine into the node's containerd
import_image() {
  flock -s "$ENGINE_LOCK" docker save "$1" | ctr_k8s images import - >/dev/null
  log "imported $1"
}

# load_images REF... -- import those the node lacks (its images stay across `down`)
load_images() {
  local image name present t0
  present=$(ctr_k8s images ls -q)   # read whole: grep -q in a pipe would SIGPIPE ctr
  for image; do
    # Docker's short names live under docker.io/library/ in containerd.
    case $image in
      */*) [[ ${image%%/*} == *[.:]* || ${image%%/*} == localhost ]] && name=$image || name=docker.io/$image ;;
      *) name=docker.io/library/$image ;;
    esac
    if grep -qxF "$name" <<<"$present"; then
      log "already in the node: $image"
      continue
    fi
    t0=$SECONDS
    import_image "$image"
    log "($image took $((SECONDS - t0))s)"
  done
}

# remove_containers -- every container and task in the node's containerd (its images stay)
remove_containers() {
  local id
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do
    ctr_k8s tasks delete --force "$id" >/dev/null 2>&1 || true
    ctr_k8s containers delete "$id" >/dev/null 2>&1 || true
  done
}

# --- host networking -------------------------------------------------------------
snapshot_sysctls() {
  [[ -f $SYSCTL_SNAPSHOT ]] && return 0   # keep the first snapshot until down restores it
  local key
  for key in "${SYSCTLS[@]}"; do
    sysctl -n "$key" >/dev/null 2>&1 && printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
  done >"$SYSCTL_SNAPSHOT.tmp"
  mv "$SYSCTL_SNAPSHOT.tmp" "$SYSCTL_SNAPSHOT"
}

restore_sysctls() {
  [[ -f $SYSCTL_SNAPSHOT ]] || return 0
  local line
  while IFS= read -r line; do
    [[ $(sysctl -n "${line%%=*}" 2>/dev/null) == "${line#*=}" ]] || sysctl -qw "$line" >/dev/null 2>&1 || true
  done <"$SYSCTL_SNAPSHOT"
  rm -f "$SYSCTL_SNAPSHOT"
}

setup_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${NODE_POD_RANGE#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Docker's FORWARD policy is DROP: let traffic to and from the pod bridge pass.
  iptables -N "$FW_CHAIN" 2>/dev/null || iptables -F "$FW_CHAIN"
  iptables -A "$FW_CHAIN" -i "$BRIDGE" -j ACCEPT
  iptables -A "$FW_CHAIN" -o "$BRIDGE" -j ACCEPT
  iptables -C FORWARD -m comment --comment "$FW_COMMENT" -j "$FW_CHAIN" 2>/dev/null \
    || iptables -I FORWARD 1 -m comment --comment "$FW_COMMENT" -j "$FW_CHAIN"
}

# Remove every KUBE-* chain (kubelet's and kube-proxy's) and our own from one
# iptables binary; nothing else on this host uses those names.
clean_iptables() {
  local ipt=$1 table rule chain
  for table in filter nat mangle; do
    "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
    # First the jumps into those chains from anywhere else, then the chains.
    while IFS= read -r rule; do
      chain=${rule#-A }; chain=${chain%% *}
      [[ $chain == KUBE-* || $chain == "$FW_CHAIN" ]] && continue
      eval "set -- ${rule/#-A/-D}"
      "$ipt" -t "$table" "$@" 2>/dev/null || true
    done < <("$ipt" -t "$table" -S | grep -E -- "-j (KUBE-[A-Z0-9-]+|$FW_CHAIN)( |$)" || true)
    for chain in $("$ipt" -t "$table" -S | awk -v fw="$FW_CHAIN" '$1 == "-N" && ($2 ~ /^KUBE-/ || $2 == fw) {print $2}'); do
      "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt" -t "$table" -S | awk -v fw="$FW_CHAIN" '$1 == "-N" && ($2 ~ /^KUBE-/ || $2 == fw) {print $2}'); do
      "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# --- commands ------------------------------------------------------------------
cmd_build() {
  [[ $(id -u) == 0 ]] || die "run as root"
  mkdir -p "$CACHE" "$LOGS"
  exec 9>"$CACHE/cluster.lock"
  flock 9
  build_all
  log "built (or cached) in $((SECONDS - t_start))s"
}

cmd_up() {
  [[ $(id -u) == 0 ]] || die "run as root"
  mkdir -p "$CACHE" "$LOGS"
  exec 9>"$CACHE/cluster.lock"
  flock 9
  build_all
  if running kube-apiserver && running kubelet && api_ready 2>/dev/null && node_ready 2>/dev/null; then
    log "already up"
    cmd_env
    return 0
  fi
  if [[ -d $RUN ]]; then
    log "a partial cluster is left over; taking it down first"
    stop_cluster
  fi
  snapshot_sysctls
  write_config
  cp "$RUN/admin.kubeconfig" "$KUBECONFIG_OUT"
  setup_network
  start_cluster
  log "up in $((SECONDS - t_start))s: context $CONTEXT, node $NODE, API https://$NODE_IP:$API_PORT"
  cmd_env
}

stop_daemon() { # NAME -- TERM, then KILL after 20 s
  local name=$1 pid i
  pid=$(pid_of "$name") || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    log "stopped $name"
  fi
  rm -f "$RUN/pids/$name.pid"
}

stop_cluster() {
  local i pid mnt id
  if running kubelet && running containerd && api_ready 2>/dev/null; then
    # No new pods, then let kubelet tear the others down properly (CNI DEL, netns).
    stop_daemon kube-controller-manager
    stop_daemon kube-scheduler
    kubectl delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
    for ((i = 0; i < 60; i++)); do
      [[ -z $(ctr_k8s tasks ls -q 2>/dev/null) ]] && break
      sleep 1
    done
    log "pods stopped"
  fi
  # Whatever kubelet did not stop (it was down, or too slow) is killed here.
  if running containerd; then
    for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
      ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    remove_containers
    log "containers removed (images kept in $IMAGES)"
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_daemon "${DAEMONS[i]}"
  done
  # Shims outlive containerd: find ours by our socket path, kill each by pid.
  for pid in $(pgrep -f -- "-address $CONTAINERD_SOCK" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  # Containers' processes outlive their shims: the last ones are in our pod cgroups.
  # shellcheck disable=SC2013  # one pid a line: words are lines
  for pid in $(cat /sys/fs/cgroup/pids/"$POD_CGROUP"/*/cgroup.procs 2>/dev/null); do
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ -x $BIN/kube-proxy ]]; then
    "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  clean_iptables iptables
  clean_iptables ip6tables
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"
    log "removed bridge $BRIDGE"
  fi
  # Kubelet's volume mounts, containerd's overlays and pod netns, deepest first.
  if [[ -d $RUN ]]; then
    for mnt in $(findmnt -rn -o TARGET | grep -F -e "$RUN/" -e "$IMAGES/" | sort -r); do
      umount -l "$mnt" 2>/dev/null || true
    done
    rm -rf "$RUN"
    log "removed $RUN"
  fi
  # Pods' cgroups (one tree per v1 controller), deepest first; a killed
  # process may take a moment to leave its cgroup.
  for ((i = 0; i < 20; i++)); do
    find /sys/fs/cgroup/*/"$POD_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
    compgen -G "/sys/fs/cgroup/*/$POD_CGROUP" >/dev/null || break
    sleep 0.5
  done
  # libcni caches results in /var/lib/cni whatever containerd is told. CNI DEL
  # removes them; a sandbox that never got one leaves its network's entry and
  # its loopback's. Nothing else on this host uses CNI: then drop the folders.
  for id in /var/lib/cni/results/trackstack-k8s-*; do
    [[ -e $id ]] || continue
    id=${id#/var/lib/cni/results/trackstack-k8s-}; id=${id%-eth0}
    rm -f "/var/lib/cni/results/trackstack-k8s-$id-eth0" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  restore_sysctls
}

cmd_down() {
  [[ $(id -u) == 0 ]] || die "run as root"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/cluster.lock"
  flock 9
  stop_cluster
  rm -f "$KUBECONFIG_OUT"
  log "down in $((SECONDS - t_start))s"
}

cmd_status() {
  local name rc=0
  for name in "${DAEMONS[@]}"; do
    if running "$name"; then
      printf '%-24s running (pid %s)\n' "$name" "$(pid_of "$name")"
    else
      printf '%-24s stopped\n' "$name"; rc=1
    fi
  done
  if ((rc == 0)) && node_ready 2>/dev/null; then
    printf 'node %s Ready; kubeconfig %s (context %s)\n' "$NODE" "$KUBECONFIG_OUT" "$CONTEXT"
  else
    printf 'cluster not ready\n'; rc=1
  fi
  return "$rc"
}

cmd_env() { printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_OUT"; }

cmd_load() {
  (($#)) || die "usage: $0 load IMAGE..."
  running containerd || die "the cluster is not up"
  load_images "$@"
}

case ${1:-} in
  up) cmd_up ;;
  build) cmd_build ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  load) shift; cmd_load "$@" ;;
  -h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $0 up|build|down|status|env|load IMAGE..." >&2; exit 2 ;;
esac
