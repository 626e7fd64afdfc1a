"""Four clients keep logging while an MLflow pod is deleted, Postgres restarts, and MLflow rolls (0 lost).

The load and its checks are the Swarm suite's (`log_under`): every run, metric step and artifact
byte a client was told was stored is read back.
"""

from __future__ import annotations

import json
import time

from tests.conftest import progress
from tests.k8s.conftest import kubectl
from tests.swarm.conftest import Deployed
from tests.swarm.test_resilience import log_under
from trackstack.targets.kubernetes import render as kube


def mlflow_pods(namespace: str) -> list[str]:
    found = json.loads(kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=mlflow",
                               "-o", "json").stdout)["items"]  # fmt: skip
    return [pod["metadata"]["name"] for pod in found if not pod["metadata"].get("deletionTimestamp")]


def rolled_out(namespace: str, kind: str, name: str) -> None:
    kubectl("-n", namespace, "rollout", "status", f"{kind}/{name}", "--timeout=300s")


def test_a_deleted_mlflow_pod_loses_no_client_call(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)

    def delete() -> None:
        kubectl("-n", namespace, "delete", "pod", mlflow_pods(namespace)[0], "--wait=false")

    load = log_under(deployed, delete, after=35)
    assert load.metrics > 0
    assert load.failures == []
    rolled_out(namespace, "deployment", "mlflow")


def postgres_uid(namespace: str) -> str:
    return kubectl("-n", namespace, "get", "pod", "postgres-0", "-o", "jsonpath={.metadata.uid}", check=False).stdout


def test_a_restarted_postgres_loses_no_stored_step(deployed: Deployed) -> None:
    """0 lost, and logging goes on once Postgres is back. Calls may fail while it is away: MLflow's
    login check reads its logins database there and answers 401 (which no client retries) meanwhile."""
    namespace = kube.namespace(deployed.settings)

    def restart() -> None:
        old = postgres_uid(namespace)
        kubectl("-n", namespace, "delete", "pod", "postgres-0", "--wait=false")
        deadline = time.monotonic() + 300
        while postgres_uid(namespace) in ("", old):  # until the StatefulSet has made the new pod
            assert time.monotonic() < deadline, "no new postgres-0 within 300 s"
            time.sleep(1)
        kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/postgres-0", "--timeout=300s")

    load = log_under(deployed, restart, after=30)
    assert load.metrics > 0
    progress(f"[k8s] {len(load.failures)} calls failed while Postgres was away: {load.failures[:3]}")
    # Every client logged again after Postgres was back (fault_ended: the new pod was ready).
    assert all(client.last_ack > load.fault_ended for client in load.clients), load.failures[:5]


def test_a_rolling_update_under_load_fails_no_client_call(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)

    def roll() -> None:
        # What a new image or setting does to the replicas: one new pod ready before an old one goes.
        # The clients log through the whole roll (it ends when every new pod is ready), then 5 s more.
        kubectl("-n", namespace, "rollout", "restart", "deployment/mlflow")
        rolled_out(namespace, "deployment", "mlflow")

    load = log_under(deployed, roll, after=5)
    assert load.metrics > 0
    assert load.failures == []
