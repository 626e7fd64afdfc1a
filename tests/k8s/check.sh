#!/usr/bin/env bash
# Throw-away proof that the test bed's cluster does what issue 14 needs.
#
# Usage: tests/k8s/check.sh [--keep]     (after `tests/k8s/cluster.sh up`)
#   --keep  leave the ts-check namespace and its volume for a look afterwards
#
# Checks: images imported from the host's Docker engine; a 2-replica Deployment
# behind a ClusterIP Service; a Job that resolves the Service by DNS name and
# hears both replicas; the host reaching the ClusterIP and a NodePort on
# 127.0.0.1; a Postgres StatefulSet whose PersistentVolumeClaim (bound to a
# hostPath PersistentVolume) keeps its data across pod deletion; server-side
# dry run rejecting a wrong field with the API's own message.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${TRACKSTACK_TESTBED_CACHE:-/var/cache/trackstack-testbed}/k8s
PV_DIR=$CACHE/run/pv/ts-check-pgdata
NS=ts-check
NODE_PORT=30080
PYTHON_IMAGE=python:3.13-slim-trixie
POSTGRES_IMAGE=postgres:17-trixie

keep=0
[[ ${1:-} == --keep ]] && keep=1

eval "$("$here/cluster.sh" env)"
kc() { "$CACHE/bin/kubectl" "$@"; }
"$here/cluster.sh" status >/dev/null || { echo "cluster is not up: run tests/k8s/cluster.sh up" >&2; exit 1; }

t_start=$SECONDS
passed=0
failed=0
log() { printf '[check +%3ss] %s\n' "$((SECONDS - t_start))" "$*"; }
ok() { passed=$((passed + 1)); log "PASS $*"; }
bad() { failed=$((failed + 1)); log "FAIL $*"; }

cleanup() {
  ((keep)) && return 0
  kc delete namespace "$NS" --wait=true --timeout=120s >/dev/null 2>&1 || true
  kc delete pv ts-check-pgdata --wait=false >/dev/null 2>&1 || true
  rm -rf "$PV_DIR"
}
trap cleanup EXIT

# --- images ---------------------------------------------------------------------
t0=$SECONDS
"$here/cluster.sh" load "$PYTHON_IMAGE" "$POSTGRES_IMAGE"
log "images in the node after $((SECONDS - t0))s"

kc delete namespace "$NS" --wait=true --timeout=120s >/dev/null 2>&1 || true
kc create namespace "$NS" >/dev/null
# The namespace's default ServiceAccount comes from the controller-manager.
until kc -n "$NS" get serviceaccount default >/dev/null 2>&1; do sleep 1; done

# --- Deployment + ClusterIP + NodePort --------------------------------------------
kc -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1   # python as PID 1 ignores SIGTERM
      containers:
        - name: echo
          image: $PYTHON_IMAGE
          imagePullPolicy: Never
          command: [python3, -c]
          args:
            - |
              import http.server, socket
              class Hostname(http.server.BaseHTTPRequestHandler):
                  def do_GET(self):
                      body = socket.gethostname().encode()
                      self.send_response(200)
                      self.send_header("Content-Length", str(len(body)))
                      self.end_headers()
                      self.wfile.write(body)
                  def log_message(self, *args):
                      pass
              http.server.ThreadingHTTPServer(("", 8080), Hostname).serve_forever()
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-nodeport}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: $NODE_PORT}]
YAML
t0=$SECONDS
if kc -n "$NS" rollout status deployment/echo --timeout=180s >/dev/null; then
  ok "2-replica Deployment ready in $((SECONDS - t0))s"
else
  bad "Deployment not ready"; kc -n "$NS" get pods -o wide; kc -n "$NS" describe pods | tail -n 30
fi

# --- a Job: DNS name of the Service, answers from both replicas ------------------------
kc -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: dns-probe}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: probe
          image: $PYTHON_IMAGE
          imagePullPolicy: Never
          command: [python3, -c]
          args:
            - |
              import socket, urllib.request
              short = socket.gethostbyname("echo")
              full = socket.gethostbyname("echo.$NS.svc.cluster.local")
              seen = set()
              for _ in range(40):
                  with urllib.request.urlopen("http://echo/", timeout=5) as reply:
                      seen.add(reply.read().decode())
              print("echo ->", short, "| echo.$NS.svc.cluster.local ->", full)
              print("replicas:", " ".join(sorted(seen)))
              raise SystemExit(0 if short == full and len(seen) == 2 else 1)
YAML
t0=$SECONDS
if kc -n "$NS" wait job/dns-probe --for=condition=Complete --timeout=120s >/dev/null; then
  ok "Job ran to completion in $((SECONDS - t0))s"
  out=$(kc -n "$NS" logs job/dns-probe)
  ok "a pod resolved the Service and heard both replicas: $(echo "$out" | tr '\n' ' ')"
else
  bad "Job dns-probe did not complete"
  kc -n "$NS" logs job/dns-probe 2>&1 | tail -n 20 || true
fi

# --- the host reaches the ClusterIP (kube-proxy) and a NodePort on 127.0.0.1 -------------------
cluster_ip=$(kc -n "$NS" get service echo -o jsonpath='{.spec.clusterIP}')
seen=$(for _ in $(seq 30); do curl -fsS --max-time 3 "http://$cluster_ip/"; echo; done | sort -u | grep -c . || true)
if [[ $seen == 2 ]]; then ok "host reached ClusterIP $cluster_ip and both replicas"; else bad "host to ClusterIP $cluster_ip: $seen replicas answered"; fi
if reply=$(curl -fsS --max-time 3 "http://127.0.0.1:$NODE_PORT/"); then
  ok "NodePort 127.0.0.1:$NODE_PORT answered ($reply)"
else
  bad "NodePort 127.0.0.1:$NODE_PORT did not answer"
fi

# --- Postgres StatefulSet on a PVC bound to a hostPath PV, surviving pod deletion -------------
mkdir -p "$PV_DIR"
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: ts-check-pgdata}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: trackstack-hostpath
  claimRef: {namespace: $NS, name: pgdata-postgres-0}
  hostPath: {path: $PV_DIR, type: Directory}
YAML
kc -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: postgres}
stringData: {password: check-only-password}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  clusterIP: None
  selector: {app: postgres}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres}
spec:
  serviceName: postgres
  replicas: 1
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: postgres
          image: $POSTGRES_IMAGE
          imagePullPolicy: Never
          env:
            - name: POSTGRES_PASSWORD
              valueFrom: {secretKeyRef: {name: postgres, key: password}}
          ports: [{containerPort: 5432}]
          readinessProbe:
            exec: {command: [pg_isready, -h, 127.0.0.1, -U, postgres]}
            periodSeconds: 2
          volumeMounts: [{name: pgdata, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
    - metadata: {name: pgdata}
      spec:
        storageClassName: trackstack-hostpath
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
YAML
psql_in_pod() { kc -n "$NS" exec postgres-0 -- psql -U postgres -h 127.0.0.1 -tAc "$1"; }
t0=$SECONDS
if kc -n "$NS" rollout status statefulset/postgres --timeout=240s >/dev/null; then
  phase=$(kc -n "$NS" get pvc pgdata-postgres-0 -o jsonpath='{.status.phase}/{.spec.volumeName}')
  ok "Postgres StatefulSet ready in $((SECONDS - t0))s; PVC $phase"
  psql_in_pod "CREATE TABLE survivor (note text); INSERT INTO survivor VALUES ('written before the pod was deleted');" >/dev/null
  uid_before=$(kc -n "$NS" get pod postgres-0 -o jsonpath='{.metadata.uid}')
  kc -n "$NS" delete pod postgres-0 --wait=true >/dev/null
  t0=$SECONDS
  for _ in $(seq 120); do  # the StatefulSet controller recreates postgres-0
    uid_now=$(kc -n "$NS" get pod postgres-0 -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
    [[ -n $uid_now && $uid_now != "$uid_before" ]] && break
    sleep 1
  done
  kc -n "$NS" wait pod/postgres-0 --for=condition=Ready --timeout=180s >/dev/null
  note=$(psql_in_pod "SELECT note FROM survivor")
  if [[ $note == "written before the pod was deleted" ]]; then
    ok "data survived pod deletion (new pod ready in $((SECONDS - t0))s): '$note'"
  else
    bad "data lost after pod deletion: '$note'"
  fi
else
  bad "Postgres StatefulSet not ready"; kc -n "$NS" describe pod postgres-0 | tail -n 30
fi

# --- server-side dry run: the API's own message for a wrong field ------------------------
manifest() { # FIELD -- a Deployment whose container has FIELD: Never
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: dry-run-probe, namespace: $NS}
spec:
  selector: {matchLabels: {app: dry-run-probe}}
  template:
    metadata: {labels: {app: dry-run-probe}}
    spec:
      containers: [{name: c, image: $PYTHON_IMAGE, $1: Never}]
YAML
}
if manifest imagePullPolicy | kc apply --server-side --dry-run=server -f - >/dev/null \
   && ! kc -n "$NS" get deployment dry-run-probe >/dev/null 2>&1; then
  ok "server-side dry run accepts a valid manifest and creates nothing"
else
  bad "server-side dry run of a valid manifest"
fi
# Server-side apply answers from the schema of the type; a plain (client-side)
# apply's server dry run goes through strict field validation. Both messages
# are the API server's own, and both name the wrong field.
if msg=$(manifest imagePullPolicyy | kc apply --server-side --dry-run=server -f - 2>&1); then
  bad "server-side apply dry run accepted a wrong field"
elif grep -q 'imagePullPolicyy: field not declared in schema' <<<"$msg"; then
  ok "server-side apply dry run rejected the wrong field: $msg"
else
  bad "unexpected server-side apply dry-run message: $msg"
fi
if msg=$(manifest imagePullPolicyy | kc apply --dry-run=server -f - 2>&1); then
  bad "server dry run accepted a wrong field"
elif grep -q 'unknown field "spec.template.spec.containers\[0\].imagePullPolicyy"' <<<"$msg"; then
  ok "server dry run (strict field validation) rejected the wrong field: $msg"
else
  bad "unexpected server dry-run message: $msg"
fi

log "done in $((SECONDS - t_start))s"
echo "$passed passed, $failed failed"
((failed == 0))
