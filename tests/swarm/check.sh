#!/usr/bin/env bash
# End-to-end check of the swarm test bed (run after `testbed.sh up`):
#   - an image built on ts-node1 (its Dockerfile runs `pip install` from PyPI),
#     pushed to the test registry and pulled from there by the workers;
#   - `docker stack deploy` of a compose file with file-based secrets and
#     configs, an overlay network, a 3-replica `endpoint_mode: dnsrr` service
#     spread over the three nodes, and Caddy (`caddy:2.11.9` stand-in) pinned
#     by `node.labels.trackstack.data == true` to ts-node1 with host-mode ports;
#   - from the host, http://10.231.0.11:PORT reaches every replica through
#     Caddy's `dynamic a` upstreams on `tasks.<service>`, and https (Caddy's
#     `tls internal`) verifies against Caddy's own root certificate.
# Leaves nothing behind (the stack is removed; the pushed image stays cached).
#
# Usage: tests/swarm/check.sh [--keep]   (--keep: leave the stack running)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/testbed.sh" env)"
STACK=tscheck
HTTP_PORT=18080
HTTPS_PORT=18443
SITE=swarm.trackstack.test      # resolved by curl --resolve only
CADDY_IMAGE=caddy:2.11.9
BASE_IMAGE=python:3.13-slim-trixie
keep=0
[[ ${1:-} == --keep ]] && keep=1

t_start=$SECONDS
log() { printf '[swarm-check +%3ss] %s\n' "$((SECONDS - t_start))" "$*"; }
fail() { printf '[swarm-check] FAIL: %s\n' "$*" >&2; exit 1; }
node_docker() { local n=$1; shift; docker -H "unix:///run/trackstack-swarm/$n.sock" "$@"; }

work=$(mktemp -d)
cleanup() {
  if ! ((keep)); then
    docker stack rm "$STACK" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- an image built on node1, through the registry ----------------------------
tag=$(date +%s)
image=$TRACKSTACK_TEST_REGISTRY/trackstack-check/echo:$tag
mkdir -p "$work/echo"
cat >"$work/echo/Dockerfile" <<EOF
FROM $BASE_IMAGE
# Proves that a build on the manager reaches PyPI (the ARG makes the step
# miss the node's build cache every run).
ARG CHECK_RUN
RUN echo "\$CHECK_RUN" && pip install --no-cache-dir --disable-pip-version-check six==1.17.0
COPY echo.py /echo.py
CMD ["python3", "/echo.py"]
EOF
cat >"$work/echo/echo.py" <<'EOF'
import http.server, socket, pathlib
secret = pathlib.Path("/run/secrets/check_secret").read_text().strip()
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"node={socket.gethostname()} secret={secret}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), Echo).serve_forever()
EOF
t0=$SECONDS
docker build -q --build-arg "CHECK_RUN=$tag" -t "$image" "$work/echo" >/dev/null || fail "docker build on ts-node1"
docker push -q "$image" >/dev/null || fail "docker push to $TRACKSTACK_TEST_REGISTRY"
log "built $image on ts-node1 (pip install from PyPI) and pushed it in $((SECONDS - t0))s"

# --- the stack ----------------------------------------------------------------
secret_value=check-$RANDOM$RANDOM
printf '%s\n' "$secret_value" >"$work/check_secret.txt"
cat >"$work/Caddyfile" <<EOF
{
	auto_https disable_redirects
}
:80 {
	reverse_proxy {
		dynamic a {
			name tasks.echo
			port 8000
			refresh 2s
		}
		lb_policy round_robin
	}
}
$SITE {
	tls internal
	reverse_proxy {
		dynamic a tasks.echo 8000
		lb_policy round_robin
	}
}
EOF
cat >"$work/stack.yaml" <<EOF
services:
  echo:
    image: $image
    hostname: "{{.Node.Hostname}}"
    secrets: [check_secret]
    networks: [backend]
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      placement:
        max_replicas_per_node: 1
  proxy:
    image: $CADDY_IMAGE
    configs:
      - source: caddyfile
        target: /etc/caddy/Caddyfile
    networks: [backend]
    volumes:
      - caddy_data:/data
    ports:
      - {target: 80, published: $HTTP_PORT, protocol: tcp, mode: host}
      - {target: 443, published: $HTTPS_PORT, protocol: tcp, mode: host}
    deploy:
      placement:
        constraints: [node.labels.trackstack.data == true]
networks:
  backend:
    driver: overlay
volumes:
  caddy_data:
secrets:
  check_secret:
    file: ./check_secret.txt
configs:
  caddyfile:
    file: ./Caddyfile
EOF
t0=$SECONDS
(cd "$work" && docker stack deploy --detach=true --resolve-image never -c stack.yaml "$STACK" >/dev/null) \
  || fail "docker stack deploy"
log "stack deployed in $((SECONDS - t0))s"

running() { # SERVICE -> "NODE NODE ..." of its running tasks
  docker service ps "${STACK}_$1" --filter desired-state=running \
    --format '{{.Node}} {{.CurrentState}}' | awk '$2 == "Running" {print $1}' | sort | xargs
}
for _ in $(seq 1 90); do
  [[ $(running echo) == "ts-node1 ts-node2 ts-node3" && $(running proxy) == ts-node1 ]] && break
  sleep 1
done
[[ $(running echo) == "ts-node1 ts-node2 ts-node3" ]] \
  || { docker service ps --no-trunc "${STACK}_echo" >&2; fail "echo is not running once on each node"; }
[[ $(running proxy) == ts-node1 ]] \
  || { docker service ps --no-trunc "${STACK}_proxy" >&2; fail "proxy is not running on the data node ts-node1"; }
log "tasks running after $((SECONDS - t0))s: echo on $(running echo); proxy on $(running proxy)"

for n in ts-node2 ts-node3; do
  node_docker "$n" image inspect -f '{{join .RepoDigests " "}}' "$image" | grep -qF "$TRACKSTACK_TEST_REGISTRY/" \
    || fail "$n did not pull $image from the registry"
done
log "workers pulled the image from $TRACKSTACK_TEST_REGISTRY"

# --- from the host ------------------------------------------------------------
addr=$TRACKSTACK_SWARM_MANAGER_ADDR
seen=
for _ in $(seq 1 60); do
  body=$(curl -fsS --max-time 5 "http://$addr:$HTTP_PORT/" 2>/dev/null) || { sleep 1; continue; }
  [[ $body == *"secret=$secret_value" ]] || fail "unexpected answer: $body"
  seen=$(printf '%s %s' "$seen" "${body%% *}" | tr ' ' '\n' | grep . | sort -u | xargs)
  [[ $seen == "node=ts-node1 node=ts-node2 node=ts-node3" ]] && break
done
[[ $seen == "node=ts-node1 node=ts-node2 node=ts-node3" ]] \
  || fail "http://$addr:$HTTP_PORT/ reached only: ${seen:-nothing}"
log "http://$addr:$HTTP_PORT/ reaches all three replicas through tasks.echo; the secret arrived"

proxy_container=$(node_docker ts-node1 ps -q --filter "label=com.docker.swarm.service.name=${STACK}_proxy" | head -n 1)
for _ in $(seq 1 30); do
  node_docker ts-node1 exec "$proxy_container" cat /data/caddy/pki/authorities/local/root.crt \
    >"$work/root.crt" 2>/dev/null && break
  sleep 1
done
[[ -s $work/root.crt ]] || fail "Caddy made no internal root certificate"
body=
for _ in $(seq 1 30); do
  body=$(curl -fsS --max-time 5 --cacert "$work/root.crt" --resolve "$SITE:$HTTPS_PORT:$addr" \
    "https://$SITE:$HTTPS_PORT/" 2>/dev/null) && break
  sleep 1
done
[[ $body == node=* ]] || fail "https://$SITE:$HTTPS_PORT/ (tls internal) did not answer"
log "https://$SITE:$HTTPS_PORT/ (tls internal) verified against Caddy's root: ${body%% *}"

# wget in the Caddy image (what a health check can use there)
node_docker ts-node1 exec "$proxy_container" wget -q -O - http://127.0.0.1:80/ | grep -q '^node=' \
  || fail "wget inside the caddy container"
log "wget inside the caddy container works (health checks)"

log "all checks passed in $((SECONDS - t_start))s"
