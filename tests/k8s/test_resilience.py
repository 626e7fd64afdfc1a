"""Four clients keep logging while an MLflow pod is deleted, Postgres restarts, and MLflow rolls (0 lost).

The load and its checks are the Swarm suite's (`log_under`): every run, metric step and artifact
byte a client was told was stored is read back.
"""

from __future__ import annotations

import json

from tests.k8s.conftest import kubectl
from tests.swarm.conftest import Deployed
from tests.swarm.test_resilience import log_under
from trackstack import kube


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


def test_a_restarted_postgres_loses_no_stored_step(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)

    def restart() -> None:
        kubectl("-n", namespace, "delete", "pod", "postgres-0", "--wait=false")

    load = log_under(deployed, restart, after=55)
    assert load.metrics > 0
    assert load.failures == []  # MLflow's client retries while the database is away
    rolled_out(namespace, "statefulset", "postgres")


def test_a_rolling_update_under_load_fails_no_client_call(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)

    def roll() -> None:
        # What a new image or setting does to the replicas: one new pod ready before an old one goes.
        kubectl("-n", namespace, "rollout", "restart", "deployment/mlflow")

    load = log_under(deployed, roll, after=85)
    assert load.metrics > 0
    assert load.failures == []
    rolled_out(namespace, "deployment", "mlflow")
