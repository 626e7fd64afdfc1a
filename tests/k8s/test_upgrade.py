"""A new MLFLOW_VERSION: `invoke deploy` backs up, stops the old replicas, runs the migration Job once, then
starts the new replicas; runs survive.

Its own project and namespace, started at MLflow 3.8.1 (the lifecycle suite's old version).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

from dotenv import dotenv_values

from tests.conftest import ROOT
from tests.k8s.conftest import PROJECT, clean_namespace, k8s_values, kubectl, load_images, project_of
from tests.swarm.conftest import invoke, write_env
from trackstack.backup_format import verify
from trackstack.targets.kubernetes import render as kube

OLD_VERSION = "3.8.1"
# Its logins have published advisories: a deploy of it is refused unless .env accepts them.
OLD_ADVISORIES = "CVE-2026-2652,CVE-2026-3198"
NEW_VERSION = str(dotenv_values(ROOT / ".env.example")["MLFLOW_VERSION"])
NODE_PORT = int(os.environ.get("TRACKSTACK_TEST_K8S_UPGRADE_PORT", "30502"))


def job_pods(namespace: str) -> dict[str, int]:
    """Pods per prepare Job: how often each ran."""
    found = json.loads(kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=mlflow-prepare",
                               "-o", "json").stdout)["items"]  # fmt: skip
    counts: dict[str, int] = {}
    for pod in found:
        job = pod["metadata"]["labels"]["job-name"]
        counts[job] = counts.get(job, 0) + 1
    return counts


def overlaps(namespace: str, old_image: str, stop: threading.Event, seen: list[str]) -> None:
    """Until `stop`: each moment a prepare pod and a pod of the old image ran at once (there should be none)."""
    while not stop.is_set():
        found = json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json", check=False).stdout or '{"items": []}')
        running = [pod for pod in found["items"] if pod.get("status", {}).get("phase") == "Running"]
        preparing = [p["metadata"]["name"] for p in running if "job-name" in p["metadata"].get("labels", {})]
        old = [p["metadata"]["name"] for p in running if p["spec"]["containers"][0]["image"] == old_image
               and "job-name" not in p["metadata"].get("labels", {})]  # fmt: skip
        if preparing and old:
            seen.append(f"{preparing} ran beside {old}")
        time.sleep(1)


def test_an_upgrade_runs_the_migration_job_once_and_keeps_the_runs(cluster: None, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    name = f"{PROJECT}-up"
    env_file = tmp_path / ".env"
    values = k8s_values() | {"COMPOSE_PROJECT_NAME": name, "KUBE_NAMESPACE": name, "MLFLOW_PORT": str(NODE_PORT),
                             "MLFLOW_REPLICAS": "1", "MLFLOW_VERSION": OLD_VERSION,
                             "MLFLOW_AUTH_ACCEPT_ADVISORIES": OLD_ADVISORIES}  # fmt: skip
    write_env(env_file, values)
    old = project_of(env_file)
    clean_namespace(old.settings)
    load_images(old)
    first = invoke("deploy", env_file=env_file)
    assert first.returncode == 0, first.stdout + first.stderr
    os.environ["MLFLOW_TRACKING_USERNAME"] = old.settings.mlflow_admin_user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = old.settings.mlflow_admin_password.get_secret_value()
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{NODE_PORT}")
    run = client.create_run(client.create_experiment(f"k8s-upgrade-{uuid.uuid4().hex[:8]}")).info.run_id
    client.log_metric(run, "loss", 0.5)

    write_env(env_file, values | {"MLFLOW_VERSION": NEW_VERSION})
    new = project_of(env_file)
    image = load_images(new)
    namespace = kube.namespace(new.settings)
    old_image = json.loads(kubectl("-n", namespace, "get", "deployment", "mlflow", "-o", "json").stdout)["spec"][
        "template"]["spec"]["containers"][0]["image"]  # fmt: skip
    stop = threading.Event()
    together: list[str] = []
    watcher = threading.Thread(target=overlaps, args=(namespace, old_image, stop, together))
    watcher.start()
    try:
        upgrade = invoke("deploy", env_file=env_file)
    finally:
        stop.set()
        watcher.join()
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    # A backup of the old version first, then the old replicas stopped, then the Job: never both at once.
    backup = re.search(r"backup written to (\S+?);", upgrade.stdout)
    assert backup, upgrade.stdout
    folder = Path(backup[1])
    try:
        assert verify(folder)["mlflow_version"] == OLD_VERSION
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert (
        upgrade.stdout.index("backup written to")
        < upgrade.stdout.index("stopping MLflow")
        < upgrade.stdout.index("(Job ")
    )
    assert together == []
    # The new image's Job ran (its output names the schema it left), before the new replica rolled.
    assert (
        f"preparing MLflow's database and bucket (Job {kube.prepare_job_name(new.settings, image)})" in upgrade.stdout
    )
    assert upgrade.stdout.index("(Job ") < upgrade.stdout.index("rolling out MLflow")
    assert "upgrading MLflow's schema from" in upgrade.stdout  # the old tables, upgraded, not created
    again = invoke("deploy", env_file=env_file)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "prepared for this image" in again.stdout
    assert job_pods(namespace) == {kube.prepare_job_name(new.settings, image): 1}  # the old image's Job is removed
    assert client.get_metric_history(run, "loss")[0].value == 0.5
    deployment = json.loads(kubectl("-n", namespace, "get", "deployment", "mlflow", "-o", "json").stdout)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    if not os.environ.get("TRACKSTACK_TEST_K8S_KEEP"):
        kubectl("delete", "namespace", namespace, "--wait=false")
