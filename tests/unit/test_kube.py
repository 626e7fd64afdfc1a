"""The Kubernetes manifests, rendered without a cluster: structure from the service table, no secret in them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from trackstack import shared_server, targets
from trackstack.problems import SettingsError
from trackstack.services import SWARM_SECRET_KEYS
from trackstack.settings import Settings
from trackstack.targets.kubernetes import apply as kubedeploy
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.validation import validate

IMAGE = "registry.school.example/trackstack-mlflow:3.17.2-0123456789ab"
KUBERNETES = {
    "DEPLOY_TARGET": "kubernetes",
    "MLFLOW_AUTH": "true",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
    "KUBE_CONTEXT": "school-cluster",
}


@pytest.fixture
def kube_values(values: dict[str, str]) -> dict[str, str]:
    return values | KUBERNETES


@pytest.fixture
def kube_settings(kube_values: dict[str, str]) -> Settings:
    return validate(kube_values)


def documents(settings: Settings) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kube.manifest_file(kube.render_kube(settings, IMAGE))) if doc]


def by_kind(settings: Settings, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents(settings) if doc["kind"] == kind}


def pod_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    workloads = by_kind(settings, "StatefulSet") | by_kind(settings, "Deployment") | by_kind(settings, "Job")
    return {name: doc["spec"]["template"]["spec"] for name, doc in workloads.items()}


def test_every_object_is_in_the_namespace_with_the_projects_labels(kube_settings: Settings) -> None:
    for doc in documents(kube_settings):
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == "trackstack"
            continue
        assert doc["metadata"]["namespace"] == "trackstack"
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "trackstack"


def test_each_server_has_startup_readiness_and_liveness_probes_and_resources(kube_settings: Settings) -> None:
    for name, spec in pod_specs(kube_settings).items():
        container = spec["containers"][0]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert set(container["resources"]) == {"requests", "limits"}, name
        if name.startswith("mlflow-prepare"):
            continue  # a Job: runs to completion
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container), name


def test_postgres_is_probed_with_pg_isready_and_mlflow_with_a_host_it_allows(kube_settings: Settings) -> None:
    specs = pod_specs(kube_settings)
    assert specs["postgres"]["containers"][0]["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    probe = specs["mlflow"]["containers"][0]["readinessProbe"]["httpGet"]
    host = probe["httpHeaders"][0]["value"]
    args = specs["mlflow"]["containers"][0]["args"]
    allowed = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert (probe["path"], host in allowed) == ("/health", True)


def test_data_services_are_statefulsets_whose_claims_outlive_them(kube_values: dict[str, str]) -> None:
    settings = validate(kube_values | {"KUBE_STORAGE_CLASS": "fast"})
    for name, doc in by_kind(settings, "StatefulSet").items():
        assert doc["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        (claim,) = doc["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["storageClassName"] == "fast", name
    assert set(by_kind(settings, "StatefulSet")) == {"postgres", "minio", "pgadmin"}


def test_mlflow_rolls_one_new_replica_before_an_old_one_stops(kube_settings: Settings) -> None:
    mlflow = by_kind(kube_settings, "Deployment")["mlflow"]["spec"]
    assert mlflow["replicas"] == kube_settings.mlflow_replicas
    assert mlflow["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert mlflow["template"]["spec"]["containers"][0]["image"] == IMAGE


def test_no_secret_is_in_the_manifests_only_in_the_secret(kube_settings: Settings) -> None:
    text = kube.manifest_file(kube.render_kube(kube_settings, IMAGE))
    assert [s for s in kube_settings.secret_values() if s in text] == []
    secret = yaml.safe_load(kube.render_secret(kube_settings))
    assert set(secret["stringData"]) == {key.lower() for key in SWARM_SECRET_KEYS}
    assert set(secret["stringData"].values()) == set(kube_settings.secret_values())


def test_each_pod_mounts_only_the_secrets_its_service_reads(kube_settings: Settings) -> None:
    specs = pod_specs(kube_settings)
    keys = {name: {item["key"] for item in spec["volumes"][0]["secret"]["items"]} for name, spec in specs.items()}
    assert keys["postgres"] == {"postgres_password"}
    assert keys["minio"] == {"minio_root_password"}
    assert keys["pgadmin"] == {"pgadmin_default_password", "postgres_password"}
    assert "pgadmin_default_password" not in keys["mlflow"]


def test_a_new_secret_value_rolls_the_pods(kube_values: dict[str, str]) -> None:
    before = kube.credentials_version(validate(kube_values))
    after = kube.credentials_version(validate(kube_values | {"MINIO_ROOT_PASSWORD": "another-Strong-Secret-99"}))
    assert before != after


def test_the_ingress_host_is_rendered_and_allowed_only_when_set(kube_values: dict[str, str]) -> None:
    assert by_kind(validate(kube_values), "Ingress") == {}
    settings = validate(kube_values | {"KUBE_INGRESS_HOST": "mlflow.school.example", "KUBE_INGRESS_CLASS": "nginx"})
    ingress = by_kind(settings, "Ingress")["mlflow"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["rules"][0]["host"] == "mlflow.school.example"
    assert "mlflow.school.example" in kube.mlflow_hosts(settings)


def test_a_node_port_outside_the_range_names_mlflow_port(kube_values: dict[str, str]) -> None:
    problems = targets.deploy_problems(kube_values | {"KUBE_MLFLOW_SERVICE": "NodePort", "MLFLOW_PORT": "5001"})
    assert [p.key for p in problems] == ["MLFLOW_PORT"]
    ok = targets.deploy_problems(kube_values | {"KUBE_MLFLOW_SERVICE": "NodePort", "MLFLOW_PORT": "30501"})
    assert ok == []


def test_kubernetes_needs_a_repository_and_logins_but_no_public_host(kube_values: dict[str, str]) -> None:
    problems = targets.deploy_problems(kube_values | {"MLFLOW_IMAGE_REPOSITORY": "", "MLFLOW_AUTH": "false"})
    assert {p.key for p in problems} == {"MLFLOW_IMAGE_REPOSITORY", "MLFLOW_AUTH"}


def test_a_project_name_that_is_no_namespace_asks_for_kube_namespace(kube_values: dict[str, str]) -> None:
    problems = targets.deploy_problems(kube_values | {"COMPOSE_PROJECT_NAME": "my_stack"})
    assert [p.key for p in problems] == ["KUBE_NAMESPACE"]
    assert targets.deploy_problems(kube_values | {"COMPOSE_PROJECT_NAME": "my_stack", "KUBE_NAMESPACE": "ml"}) == []


@pytest.mark.parametrize(
    ("key", "bad"),
    [("DEPLOY_TARGET", "k8s"), ("KUBE_NAMESPACE", "My_Space"), ("KUBE_CONTEXT", "a b"),
     ("KUBE_INGRESS_HOST", "10.0.0.1"), ("KUBE_MLFLOW_SERVICE", "Ingress")],
)  # fmt: skip
def test_bad_kubernetes_keys_are_named(kube_values: dict[str, str], key: str, bad: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate(kube_values | {key: bad})
    assert [p.key for p in caught.value.problems] == [key]


def test_the_prepare_job_is_named_for_the_image_and_what_it_prepares(kube_settings: Settings) -> None:
    name = kube.prepare_job_name(kube_settings, IMAGE)
    assert re.fullmatch(rf"mlflow-prepare-{kube_settings.mlflow_version.replace('.', '-')}-[0-9a-f]{{12}}", name)
    assert len(name) <= 63
    assert kube.prepare_job_name(kube_settings, IMAGE.replace("3.17.2", "3.18.0")) != name
    assert name in by_kind(kube_settings, "Job")


@pytest.mark.parametrize(
    ("key", "value", "runs_again"),
    [("MLFLOW_ADMIN_PASSWORD", "another-Strong-Secret-4716", True), ("MLFLOW_BUCKET", "other-bucket", True),
     ("MLFLOW_ADMIN_USER", "teacher", True), ("POSTGRES_PASSWORD", "another-Strong-Secret-4717", True),
     ("MLFLOW_REPLICAS", "5", False), ("PGADMIN_DEFAULT_PASSWORD", "another-Strong-Secret-4718", False),
     ("PGADMIN_DEFAULT_EMAIL", "teacher@example.com", False), ("KUBE_INGRESS_HOST", "mlflow.school.example", False),
     ("KUBE_MINIO_STORAGE", "80Gi", False)],
)  # fmt: skip
def test_the_prepare_job_runs_again_when_what_it_prepares_changes(
    kube_values: dict[str, str], key: str, value: str, runs_again: bool
) -> None:
    before = kube.prepare_job_name(validate(kube_values), IMAGE)
    after = kube.prepare_job_name(validate(kube_values | {key: value}), IMAGE)
    assert (after != before) is runs_again
    assert value not in after or not key.endswith("PASSWORD")


def test_both_orchestrators_prepare_again_for_the_same_changes(kube_values: dict[str, str]) -> None:
    """Swarm's fingerprint hashes its job's command line; it holds what the shared one hashes."""
    shared = kube_values | {"MLFLOW_PUBLIC_HOSTS": "mlflow.school.example"}
    for change in ({"MLFLOW_ADMIN_PASSWORD": "another-Strong-Secret-4716"}, {"MLFLOW_BUCKET": "other-bucket"},
                   {"MLFLOW_REPLICAS": "5"}):  # fmt: skip
        swarm_changed = swarm.prepare_fingerprint(validate(shared | change), image=IMAGE) != swarm.prepare_fingerprint(
            validate(shared), image=IMAGE
        )
        kube_changed = shared_server.prepare_fingerprint(
            validate(shared | change), image=IMAGE
        ) != shared_server.prepare_fingerprint(validate(shared), image=IMAGE)
        assert swarm_changed == kube_changed, change


def test_kubectl_names_the_context_and_namespace(kube_values: dict[str, str]) -> None:
    settings = validate(kube_values | {"KUBE_NAMESPACE": "ml"})
    assert kubedeploy.kubectl(settings, "get", "pods") == [
        "kubectl", "--context", "school-cluster", "--namespace", "ml", "get", "pods"]  # fmt: skip
    current = validate(kube_values | {"KUBE_CONTEXT": ""})
    assert kubedeploy.kubectl(current, "get", "pods")[:3] == ["kubectl", "--namespace", "trackstack"]


def test_the_job_prepares_the_logins_and_the_replicas_only_read_them(kube_settings: Settings) -> None:
    specs = pod_specs(kube_settings)
    env = {name: {e["name"]: e.get("value") for e in spec["containers"][0]["env"]} for name, spec in specs.items()}
    job = kube.prepare_job_name(kube_settings, IMAGE)
    assert "TRACKSTACK_AUTH_PREPARED" not in env[job]
    assert env["mlflow"]["TRACKSTACK_AUTH_PREPARED"] == "true"


def test_mlflow_may_use_more_memory_with_more_workers_and_the_job_runner(kube_values: dict[str, str]) -> None:
    def limit(**extra: str) -> int:
        mlflow = pod_specs(validate(kube_values | extra))["mlflow"]["containers"][0]
        return int(mlflow["resources"]["limits"]["memory"].removesuffix("Mi"))

    one = limit(MLFLOW_WORKERS="1")
    assert one >= 1536
    assert limit(MLFLOW_WORKERS="2") > one
    assert limit(MLFLOW_WORKERS="1", MLFLOW_JOB_EXECUTION="true") >= one + 1024


def test_with_the_job_runner_one_pod_outside_the_service_runs_the_periodic_jobs(kube_values: dict[str, str]) -> None:
    settings = validate(kube_values | {"MLFLOW_JOB_EXECUTION": "true", "MLFLOW_REPLICAS": "3"})
    deployments = by_kind(settings, "Deployment")
    assert set(deployments) == {"mlflow", kube.PERIODIC}
    env = {name: {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
           for name, doc in deployments.items()}  # fmt: skip
    assert env["mlflow"][kube.PERIODIC_TASKS] == "false"
    assert env[kube.PERIODIC][kube.PERIODIC_TASKS] == "true"
    periodic = deployments[kube.PERIODIC]["spec"]
    assert (periodic["replicas"], periodic["strategy"]) == (1, {"type": "Recreate"})  # never two at once
    assert deployments["mlflow"]["spec"]["replicas"] == 3
    # The same server otherwise: image, arguments, probes, resources.
    mlflow, other = (
        deployments[name]["spec"]["template"]["spec"]["containers"][0] for name in ("mlflow", kube.PERIODIC)
    )
    assert {k: v for k, v in mlflow.items() if k != "env"} == {k: v for k, v in other.items() if k != "env"}
    # The Service sends requests to the replicas only.
    selector = by_kind(settings, "Service")["mlflow"]["spec"]["selector"]
    labels = {name: doc["spec"]["template"]["metadata"]["labels"] for name, doc in deployments.items()}
    assert selector.items() <= labels["mlflow"].items()
    assert not selector.items() <= labels[kube.PERIODIC].items()
    assert kube.workloads(settings)["deployment"] == ("mlflow", kube.PERIODIC)


def test_without_the_job_runner_there_is_no_periodic_pod_and_mlflow_keeps_its_default(kube_settings: Settings) -> None:
    assert not kube_settings.mlflow_job_execution
    deployments = by_kind(kube_settings, "Deployment")
    assert set(deployments) == {"mlflow"}
    env = [e["name"] for e in deployments["mlflow"]["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert kube.PERIODIC_TASKS not in env
    assert kube.workloads(kube_settings)["deployment"] == ("mlflow",)


def test_volume_sizes_are_settings_checked_as_quantities(kube_values: dict[str, str]) -> None:
    settings = validate(kube_values | {"KUBE_POSTGRES_STORAGE": "20Gi", "KUBE_MINIO_STORAGE": "1.5Ti"})
    claims = {name: doc["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
              for name, doc in by_kind(settings, "StatefulSet").items()}  # fmt: skip
    assert claims == {"postgres": "20Gi", "minio": "1.5Ti", "pgadmin": "1Gi"}
    assert kube.storage(validate(kube_values)) == {"postgres": "10Gi", "minio": "50Gi", "pgadmin": "1Gi"}


@pytest.mark.parametrize("bad", ["10", "0Gi", "10 Gi", "10GB", "-1Gi", "ten", ""])
def test_a_size_that_is_no_quantity_is_named(kube_values: dict[str, str], bad: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate(kube_values | {"KUBE_MINIO_STORAGE": bad})
    assert [p.key for p in caught.value.problems] == ["KUBE_MINIO_STORAGE"]
    assert "a Kubernetes quantity with a unit" in str(caught.value)


def test_a_size_other_than_the_deployed_claims_is_named_with_its_fix(kube_values: dict[str, str]) -> None:
    def statefulset(name: str, size: str) -> dict[str, Any]:
        claim = {"metadata": {"name": f"{name}-data"}, "spec": {"resources": {"requests": {"storage": size}}}}
        return {"metadata": {"name": name}, "spec": {"volumeClaimTemplates": [claim]}}

    deployed = [statefulset("postgres", "10Gi"), statefulset("minio", "51200Mi"), statefulset("pgadmin", "1Gi")]
    assert kube.resized_claims(validate(kube_values), deployed) == []  # 51200Mi is 50Gi
    problems = kube.resized_claims(validate(kube_values | {"KUBE_POSTGRES_STORAGE": "20Gi"}), deployed)
    assert [p.key for p in problems] == ["KUBE_POSTGRES_STORAGE"]
    assert "set KUBE_POSTGRES_STORAGE=10Gi again" in problems[0].fix
    assert "patch pvc postgres-data-postgres-0" in problems[0].fix


def test_every_pod_runs_as_its_images_non_root_user_without_privileges(kube_values: dict[str, str]) -> None:
    specs = pod_specs(validate(kube_values | {"MLFLOW_JOB_EXECUTION": "true"}))
    uids = {"postgres": 999, "minio": 1000, "pgadmin": 5050, "mlflow": 10001, kube.PERIODIC: 10001}
    assert set(specs) == {*uids, next(name for name in specs if name.startswith(kube.PREPARE_JOB_PREFIX))}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == uids.get(name, 10001), name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            # Pod Security "restricted" lets a container add this one capability only.
            assert set(security["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, name
            assert "privileged" not in security, name
            assert "runAsUser" not in security, name
        # Only the volume types "restricted" allows.
        for volume in spec["volumes"]:
            assert set(volume) - {"name"} <= {"secret", "configMap", "emptyDir", "persistentVolumeClaim"}, name
    for name, group in {"postgres": 999, "minio": 1000, "pgadmin": 5050}.items():
        assert specs[name]["securityContext"]["fsGroup"] == group
    # pgAdmin serves port 80 as uid 5050: the namespaced sysctl that "restricted" allows.
    assert specs["pgadmin"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
    ]


def test_the_namespace_enforces_the_restricted_pod_security_level(kube_settings: Settings) -> None:
    labels = by_kind(kube_settings, "Namespace")["trackstack"]["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def _selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions with In) selects `labels`."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    return all(
        labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []) if e["operator"] == "In"
    )


def _allowed(settings: Settings, source: dict[str, str] | None, target: str, port: int) -> bool:
    """Whether the policies let a pod with labels `source` (None: outside the namespace) reach `target` on `port`."""
    pods = {doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
            for kind in ("StatefulSet", "Deployment") for doc in by_kind(settings, kind).values()}  # fmt: skip
    policies = [
        doc
        for doc in by_kind(settings, "NetworkPolicy").values()
        if _selected(doc["spec"]["podSelector"], pods[target])
    ]
    assert policies, f"no policy selects {target}: the default-deny one selects every pod"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if port not in [p["port"] for p in rule.get("ports", [])]:
                continue
            if "from" not in rule:
                return True
            if source is not None and any(_selected(peer["podSelector"], source) for peer in rule["from"]):
                return True
    return False


def test_network_policies_let_in_only_what_the_stack_needs(kube_values: dict[str, str]) -> None:
    settings = validate(kube_values | {"MLFLOW_JOB_EXECUTION": "true"})
    project = settings.compose_project_name

    def pod(name: str) -> dict[str, str]:
        return kube.labels(settings, name)

    assert by_kind(settings, "NetworkPolicy")["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    assert _allowed(settings, None, "mlflow", 5000)
    assert _allowed(settings, None, "pgadmin", 80)
    for client in ("mlflow", kube.PERIODIC, kube.PREPARE_LABEL, "pgadmin"):
        assert _allowed(settings, pod(client), "postgres", 5432), client
    for client in ("mlflow", kube.PERIODIC, kube.PREPARE_LABEL):
        assert _allowed(settings, pod(client), "minio", 9000), client
    assert not _allowed(settings, pod("pgadmin"), "minio", 9000)
    assert not _allowed(settings, None, "postgres", 5432)
    assert not _allowed(settings, None, "minio", 9000)
    assert not _allowed(settings, pod("mlflow"), "minio", 9001)  # the console: through a port-forward only
    assert not _allowed(settings, pod("minio"), "postgres", 5432)
    assert not _allowed(settings, pod("mlflow") | {"app.kubernetes.io/instance": "other"}, "postgres", 5432)
    assert not _allowed(settings, None, "mlflow", 5432)
    assert project in str(by_kind(settings, "NetworkPolicy")["allow-postgres"]["spec"])


def test_every_root_filesystem_but_pgadmins_is_read_only_with_an_empty_dir_where_the_image_writes(
    kube_values: dict[str, str],
) -> None:
    specs = pod_specs(validate(kube_values | {"MLFLOW_JOB_EXECUTION": "true"}))
    tmp = "/tmp"  # noqa: S108 - a path inside the containers
    scratch = {"postgres": {tmp, "/var/run/postgresql"}, "minio": {tmp, "/.minio"}, "pgadmin": set()}
    for name, spec in specs.items():
        (container,) = spec["containers"]
        read_only = container["securityContext"].get("readOnlyRootFilesystem", False)
        # pgAdmin writes its configuration into its application folder (docs/kubernetes.md).
        assert read_only is (name != "pgadmin"), name
        empty_dirs = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        mounted = {mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in empty_dirs}
        assert mounted == scratch.get(name, {tmp, "/home/mlflow"}), name  # MLflow, its periodic pod, the Job


def _kubernetes_expands(arg: str) -> str:
    """What Kubernetes makes of a container arg: `$$` is a `$`, `$(NAME)` a variable (here: none)."""
    out, i = [], 0
    while i < len(arg):
        if arg.startswith("$$", i):
            out.append("$")
            i += 2
        else:
            assert not arg.startswith("$(", i), f"an unescaped $( in {arg!r}"
            out.append(arg[i])
            i += 1
    return "".join(out)


def test_the_prepare_job_gets_its_command_byte_for_byte_after_kubernetes_expands_it(kube_settings: Settings) -> None:
    """The role step's SQL has `DO $$ ... $$` blocks: written as is, Kubernetes reduced them to `DO $`."""
    job = by_kind(kube_settings, "Job")[kube.prepare_job_name(kube_settings, IMAGE)]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    command = shared_server.prepare_command(kube_settings)
    assert any("$$" in arg for arg in command)
    assert [_kubernetes_expands(arg) for arg in args] == command
