#!/usr/bin/env bash
# A three-node Docker Swarm on this one machine, for tests only (issue 13).
#
# Three network namespaces on a host bridge, each with a dockerd of its own;
# ts-node1 is the manager, ts-node2 and ts-node3 are workers; a registry runs
# on the host at 10.231.0.1:5000. The host's Docker engine takes no part.
# See README.md beside this file.
#
# Usage: tests/swarm/testbed.sh COMMAND
#   up               build what is missing, start everything, form the swarm
#   down             stop daemons and registry, remove namespaces, bridge, NAT
#                    rules; keeps the caches (images, volumes, build cache)
#   status           what is running
#   node-stop NAME   stop that node's dockerd (SIGTERM, wait)
#   node-start NAME  start it again; it rejoins the swarm
#   env              shell lines for the tests: eval "$(tests/swarm/testbed.sh env)"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
images_dir=$repo_root/tests/upstream-images
# shellcheck source=tests/daemons.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/daemons.sh"

CACHE_DIR=${TRACKSTACK_TESTBED_CACHE:-/var/cache/trackstack-testbed}
ENGINE_LOCK=${TRACKSTACK_TEST_ENGINE_LOCK:-/run/trackstack-test-engine.lock}
SWARM_CACHE=$CACHE_DIR/swarm          # data roots and registry storage: kept
LOG_DIR=$CACHE_DIR/logs/swarm
RUN_DIR=/run/trackstack-swarm         # sockets, pid files, exec roots: gone on down
BRIDGE=tsswarm0
NET_PREFIX=10.231.0                   # /24 on the bridge; the host is .1
HOST_ADDR=$NET_PREFIX.1
NODES=(ts-node1 ts-node2 ts-node3)    # node N has address .1N
MANAGER=ts-node1
DATA_LABEL=trackstack.data=true       # the node that holds the stateful volumes
REGISTRY=$HOST_ADDR:5000
REGISTRY_PKG=github.com/distribution/distribution/v3/cmd/registry
REGISTRY_VERSION=v3.1.2
# Overlay subnets come from here: clear of the bridge and of the host's resolver.
ADDR_POOL=10.232.0.0/16
RULE_TAG=trackstack-swarm             # comment on every iptables rule we add

t_start=$SECONDS
log() { printf '[swarm-testbed +%3ss] %s\n' "$((SECONDS - t_start))" "$*"; }
die() { printf '[swarm-testbed] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '9,16p' "$0" | sed 's/^# \{0,1\}//'; }

node_addr() { printf '%s.1%s' "$NET_PREFIX" "${1#ts-node}"; }
node_sock() { printf '%s/%s.sock' "$RUN_DIR" "$1"; }
node_pidfile() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
ndocker() { local n=$1; shift; docker -H "unix://$(node_sock "$n")" "$@"; }
is_node() { local n; for n in "${NODES[@]}"; do [[ $n == "$1" ]] && return 0; done; return 1; }

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_running() { pid_alive "$(node_pidfile "$1")"; }
node_answers() { ndocker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# --- network ------------------------------------------------------------------
ipt_ensure() { # TABLE CHAIN RULE... : add (insert for FORWARD) unless present
  local table=$1 chain=$2; shift 2
  iptables -t "$table" -C "$chain" "$@" -m comment --comment "$RULE_TAG" 2>/dev/null && return 0
  if [[ $chain == FORWARD ]]; then
    # Before Docker's own FORWARD rules (policy DROP, bridge isolation).
    iptables -t "$table" -I "$chain" 1 "$@" -m comment --comment "$RULE_TAG"
  else
    iptables -t "$table" -A "$chain" "$@" -m comment --comment "$RULE_TAG"
  fi
}

ipt_remove_ours() { # delete every rule carrying our comment, in both tables
  local table rule
  for table in filter nat; do
    while rule=$(iptables -t "$table" -S | grep -m1 -- "--comment $RULE_TAG"); do
      # -S prints "-A CHAIN ..."; the same words after -D delete it.
      eval "iptables -t $table -D ${rule#-A }"
    done
  done
}

network_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$HOST_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local n addr veth
  for n in "${NODES[@]}"; do
    addr=$(node_addr "$n")
    veth=$n-h      # host end; eth0 inside the namespace
    [[ -e /var/run/netns/$n ]] || ip netns add "$n"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$n"
    fi
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$n" link set lo up
    ip -n "$n" addr replace "$addr/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" route replace default via "$HOST_ADDR"
  done
  # Outbound for builds and DNS (pip, apt): the host routes and masquerades
  # the bridge's /24 only; Docker's FORWARD policy is DROP, so let the bridge
  # through explicitly (bridged node-to-node traffic passes FORWARD too).
  sysctl -qw net.ipv4.ip_forward=1
  ipt_ensure nat POSTROUTING -s "$NET_PREFIX.0/24" ! -o "$BRIDGE" -j MASQUERADE
  ipt_ensure filter FORWARD -o "$BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  ipt_ensure filter FORWARD -i "$BRIDGE" -j ACCEPT
}

network_down() {
  local n
  for n in "${NODES[@]}"; do
    # Deleting the namespace deletes its veth pair too.
    [[ -e /var/run/netns/$n ]] && ip netns del "$n"
    ip link show "$n-h" >/dev/null 2>&1 && ip link del "$n-h"
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  ipt_remove_ours
  return 0
}

# --- node daemons -------------------------------------------------------------
node_start() {
  local n=$1 t0=$SECONDS
  if node_running "$n" && node_answers "$n"; then return 0; fi
  local exec_root=$RUN_DIR/$n data_root=$SWARM_CACHE/$n
  mkdir -p "$exec_root" "$data_root" "$LOG_DIR"
  rm -f "$(node_pidfile "$n")" "$(node_sock "$n")"
  # `ip netns exec` remounts /sys and dockerd then finds no devices cgroup, so
  # only the network namespace is entered; a UTS namespace of its own gives the
  # node its name as hostname (`docker node ls`, node.hostname constraints).
  # Not DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: Engine 20.10 honours it as
  # "never pull", so workers could not fetch images pushed to our registry.
  # Without it a swarm task's pull of a stand-in (docker.io, quay.io) fails
  # at once (the resolver knows no such host) and the local image is used.
  # shellcheck disable=SC2016  # expanded by the inner sh, not here
  (close_fds && exec setsid \
    nsenter --net="/var/run/netns/$n" \
    unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$n" \
    dockerd \
      --data-root "$data_root" \
      --exec-root "$exec_root" \
      --pidfile "$(node_pidfile "$n")" \
      -H "unix://$(node_sock "$n")" \
      --cgroup-parent "/$n" \
      --insecure-registry "$REGISTRY") \
      </dev/null >>"$LOG_DIR/$n.log" 2>&1 &
  for _ in $(seq 1 120); do
    node_answers "$n" && break
    sleep 0.5
  done
  node_answers "$n" || { tail -n 30 "$LOG_DIR/$n.log" >&2; die "dockerd of $n did not start (log: $LOG_DIR/$n.log)"; }
  log "$n: dockerd $(ndocker "$n" version --format '{{.Server.Version}}') up at $(node_addr "$n") in $((SECONDS - t0))s"
}

node_stop() {
  local n=$1 pidfile pid
  pidfile=$(node_pidfile "$n")
  if ! node_running "$n"; then return 0; fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  # dockerd stops its containers (10 s grace each, in parallel) and its containerd.
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$n: dockerd $pid ignored SIGTERM for 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  log "$n: dockerd stopped"
}

# Whatever a dead daemon left mounted under its exec root (netns bind mounts).
unmount_under() {
  local m
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# --- registry -----------------------------------------------------------------
registry_up() {
  local pidfile=$RUN_DIR/registry.pid conf=$RUN_DIR/registry.yml bin
  if pid_alive "$pidfile" && curl -fsS -o /dev/null "http://$REGISTRY/v2/"; then return 0; fi
  bin=$("$images_dir/go-binary.sh" registry "$REGISTRY_PKG" "$REGISTRY_VERSION")
  mkdir -p "$SWARM_CACHE/registry" "$LOG_DIR"
  cat >"$conf" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $SWARM_CACHE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
CONF
  # Traces would go to an OTLP collector on localhost that does not exist.
  (close_fds && OTEL_TRACES_EXPORTER=none exec setsid "$bin" serve "$conf") </dev/null >>"$LOG_DIR/registry.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 40); do
    curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null && break
    sleep 0.25
  done
  curl -fsS -o /dev/null "http://$REGISTRY/v2/" \
    || { tail -n 20 "$LOG_DIR/registry.log" >&2; die "registry did not answer at $REGISTRY"; }
  log "registry $REGISTRY_VERSION at http://$REGISTRY (storage $SWARM_CACHE/registry)"
}

registry_down() {
  local pidfile=$RUN_DIR/registry.pid pid
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "registry stopped"
}

# --- swarm --------------------------------------------------------------------
swarm_field() { ndocker "$1" info --format "$2" 2>/dev/null; }
node_id() { swarm_field "$1" '{{.Swarm.NodeID}}'; }

# The swarm we want: ts-node1 manages (at its address), every node is in it,
# Ready, and node1 carries the data label.
swarm_healthy() {
  [[ $(swarm_field "$MANAGER" '{{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}') == "true $(node_addr "$MANAGER")" ]] || return 1
  local n id
  for n in "${NODES[@]}"; do
    [[ $(swarm_field "$n" '{{.Swarm.LocalNodeState}}') == active ]] || return 1
    id=$(node_id "$n") && [[ -n $id ]] || return 1
    [[ $(ndocker "$MANAGER" node inspect -f '{{.Status.State}}' "$id" 2>/dev/null) == ready ]] || return 1
  done
  [[ $(ndocker "$MANAGER" node inspect -f '{{index .Spec.Labels "trackstack.data"}}' "$(node_id "$MANAGER")") == true ]]
}

swarm_create() {
  local t0=$SECONDS n token
  for n in "${NODES[@]}"; do
    if [[ $(swarm_field "$n" '{{.Swarm.LocalNodeState}}') != inactive ]]; then
      ndocker "$n" swarm leave --force >/dev/null 2>&1 || true
    fi
    # Task containers of the old swarm would otherwise linger, stopped.
    ndocker "$n" ps -aq --filter label=com.docker.swarm.task.id | xargs -r docker -H "unix://$(node_sock "$n")" rm -f >/dev/null
  done
  ndocker "$MANAGER" swarm init --advertise-addr "$(node_addr "$MANAGER")" \
    --default-addr-pool "$ADDR_POOL" >/dev/null
  token=$(ndocker "$MANAGER" swarm join-token -q worker)
  for n in "${NODES[@]}"; do
    [[ $n == "$MANAGER" ]] && continue
    ndocker "$n" swarm join --token "$token" --advertise-addr "$(node_addr "$n")" \
      "$(node_addr "$MANAGER"):2377" >/dev/null
  done
  ndocker "$MANAGER" node update --label-add "$DATA_LABEL" "$(node_id "$MANAGER")" >/dev/null
  for _ in $(seq 1 60); do swarm_healthy && break; sleep 1; done
  swarm_healthy || { ndocker "$MANAGER" node ls >&2 || true; die "the swarm did not become healthy"; }
  log "swarm formed in $((SECONDS - t0))s: $MANAGER manager ($DATA_LABEL), ${NODES[*]:1} workers"
}

wait_ready() { # NAME: the manager sees the node Ready again
  local n=$1
  node_running "$MANAGER" && node_answers "$MANAGER" || return 0
  for _ in $(seq 1 60); do
    [[ $(ndocker "$MANAGER" node inspect -f '{{.Status.State}}' "$(node_id "$n")" 2>/dev/null) == ready ]] && return 0
    sleep 1
  done
  return 1
}

# --- images -------------------------------------------------------------------
load_images() {
  local t0=$SECONDS refs ref id n missing tar
  # Every use of the host's engine holds its lock shared: CI's daemon-restart test may run
  # beside this bed and holds it exclusively (tests/conftest.py, engine_lock).
  flock -s "$ENGINE_LOCK" "$images_dir/build.sh"
  mapfile -t refs < <("$images_dir/build.sh" --list)
  ((${#refs[@]})) || die "tests/upstream-images/build.sh --list printed no image references"
  tar=$(mktemp "$CACHE_DIR/swarm-image.XXXXXX.tar")
  for ref in "${refs[@]}"; do
    id=$(flock -s "$ENGINE_LOCK" docker image inspect -f '{{.Id}}' "$ref")
    missing=()
    for n in "${NODES[@]}"; do
      [[ $(ndocker "$n" image inspect -f '{{.Id}}' "$ref" 2>/dev/null) == "$id" ]] || missing+=("$n")
    done
    ((${#missing[@]})) || continue
    local t1=$SECONDS
    # One save for all the nodes that lack it.
    flock -s "$ENGINE_LOCK" docker save -o "$tar" "$ref"
    for n in "${missing[@]}"; do ndocker "$n" load -q -i "$tar" >/dev/null; done
    log "loaded $ref into ${missing[*]} in $((SECONDS - t1))s"
  done
  rm -f "$tar"
  log "images: ${#refs[@]} references present on all nodes ($((SECONDS - t0))s)"
}

# --- commands -----------------------------------------------------------------
cmd_up() {
  local n started=()
  mkdir -p "$RUN_DIR" "$SWARM_CACHE" "$LOG_DIR"
  network_up
  log "network: $BRIDGE $HOST_ADDR/24, namespaces ${NODES[*]}"
  registry_up
  for n in "${NODES[@]}"; do
    node_running "$n" && node_answers "$n" && continue
    node_start "$n"
    started+=("$n")
  done
  # Daemons that all had to be started bring the swarm of an earlier run with
  # them (its services, networks, secrets): start from a clean one instead.
  # A single node started again (after node-stop) just rejoins.
  if ((${#started[@]} == ${#NODES[@]})); then
    swarm_create
  else
    for n in "${started[@]}"; do wait_ready "$n" || true; done
    if swarm_healthy; then log "swarm healthy"; else swarm_create; fi
  fi
  load_images
  log "up in $((SECONDS - t_start))s; eval \"\$($0 env)\" to use it"
}

cmd_down() {
  local n
  for n in "${NODES[@]}"; do
    node_stop "$n"
    unmount_under "$RUN_DIR/$n"
  done
  registry_down
  network_down
  rm -rf "$RUN_DIR"
  log "down in $((SECONDS - t_start))s (caches kept in $SWARM_CACHE)"
}

cmd_status() {
  local n state
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge   $BRIDGE up ($HOST_ADDR/24)"; else echo "bridge   $BRIDGE absent"; fi
  if pid_alive "$RUN_DIR/registry.pid"; then
    echo "registry http://$REGISTRY pid $(cat "$RUN_DIR/registry.pid") ($(curl -fsS -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/" 2>/dev/null || echo no answer))"
  else
    echo "registry stopped"
  fi
  for n in "${NODES[@]}"; do
    if node_running "$n"; then
      state=$(swarm_field "$n" '{{.Swarm.LocalNodeState}} manager={{.Swarm.ControlAvailable}} containers={{.ContainersRunning}} images={{.Images}}' || echo "not answering")
      echo "$n $(node_addr "$n") dockerd pid $(cat "$(node_pidfile "$n")"): $state"
    else
      echo "$n $(node_addr "$n") dockerd stopped"
    fi
  done
  if node_running "$MANAGER" && node_answers "$MANAGER"; then
    ndocker "$MANAGER" node ls --format '  {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' 2>/dev/null || true
  fi
}

cmd_env() {
  local n nodes=()
  for n in "${NODES[@]}"; do nodes+=("$n=$(node_addr "$n")"); done
  cat <<ENV
export DOCKER_HOST=unix://$(node_sock "$MANAGER")
export TRACKSTACK_TEST_REGISTRY=$REGISTRY
export TRACKSTACK_SWARM_MANAGER_ADDR=$(node_addr "$MANAGER")
export TRACKSTACK_SWARM_NODES='${nodes[*]}'
ENV
}

[[ $(id -u) -eq 0 || ${1:-} == env || ${1:-} == -h || ${1:-} == --help ]] \
  || die "run as root (network namespaces, iptables, dockerd)"

case ${1:-} in
  up|down|node-stop|node-start)
    mkdir -p "$CACHE_DIR"
    # One change of the test bed at a time per machine. The daemons started
    # below must not inherit fd 9 (9>&-), or they would hold the lock forever.
    exec 9>"$CACHE_DIR/swarm.lock"
    flock -n 9 || { log "waiting for another testbed.sh"; flock 9; } ;;
esac

case ${1:-} in
  up) [[ $# -eq 1 ]] || { usage >&2; exit 2; }; cmd_up ;;
  down) [[ $# -eq 1 ]] || { usage >&2; exit 2; }; cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  node-stop|node-start)
    if [[ $# -ne 2 ]] || ! is_node "$2"; then usage >&2; die "$1 needs one of: ${NODES[*]}"; fi
    if [[ $1 == node-stop ]]; then
      node_stop "$2"
      unmount_under "$RUN_DIR/$2"
    else
      [[ -e /var/run/netns/$2 ]] || die "the test bed is down: run '$0 up' first"
      node_start "$2"
      wait_ready "$2" || die "$2 did not become Ready in the swarm within 60s"
      log "$2 is Ready in the swarm"
    fi ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
