"""Kubernetes, pure: the manifests of a stack, the Secret's document and the deploy's names.

Settings in, text out; `apply.py` applies them with kubectl. The same service table,
templates and MLflow image as on Docker Swarm: a pod reads its secrets as files under
/run/secrets (the images' *_FILE variables, the Swarm layout), so the entrypoint, the prepare
script and pgAdmin's password command are the Swarm ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackstack import backup_image, containers, mlflow_gc, shared_server
from trackstack.containers import allowed_hosts, auth_start
from trackstack.problems import Problem
from trackstack.services import MINIO, MLFLOW, PGADMIN, POSTGRES, PREPARE_SECRETS, SWARM_SECRET_KEYS, Service
from trackstack.settings import Settings
from trackstack.templating import render_template

MANIFEST_FILE = "kubernetes.yaml"
SECRET = "trackstack-credentials"  # noqa: S105 - the Secret's name
FIELD_MANAGER = "trackstack"
# Postgres, the artifact store (MinIO or SeaweedFS, both named `minio`) and pgAdmin: one pod each,
# with a claim for its volume (data_services).
DATA_SERVICES = (POSTGRES, MINIO, PGADMIN)


def data_services(settings: Settings) -> tuple[Service, ...]:
    """The data services with the artifact store `.env` chooses."""
    return (POSTGRES, settings.store, PGADMIN)


# MLflow's periodic jobs (MLFLOW_JOB_EXECUTION=true) run in this one pod only (mlflow_workloads).
PERIODIC = f"{MLFLOW.name}-periodic"
PERIODIC_TASKS = "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS"
NODE_PORTS = range(30000, 32768)  # the API server's default --service-node-port-range
MLFLOW_CONTAINER_PORT = MLFLOW.endpoints[0].container_port
# The Host header of requests from inside the cluster: one MLflow always answers (render.allowed_hosts).
MLFLOW_IN_CLUSTER_HOST = MLFLOW.address
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# trackstack's certificate (its own CA's, or TLS_CERT_FILE's) as a TLS Secret; the one cert-manager
# writes for KUBE_INGRESS_CERT_ISSUER; where MLflow reads its certificate when it serves TLS itself.
TLS_SECRET = "trackstack-tls"  # noqa: S105 - the Secret's name
ISSUED_SECRET = "mlflow-ingress-tls"  # noqa: S105 - the Secret's name
TLS_MOUNT = "/run/tls"
# MLflow's S3 user is made inside the store's pod (apply.grant_store), at MinIO's S3 API there.
STORE_API_PORT = next(e.container_port for e in MINIO.endpoints if e.port_key == "MINIO_API_PORT")


def mlflow_serves_tls(settings: Settings) -> bool:
    """MLflow's NodePort or LoadBalancer carries logins across the network: MLflow terminates TLS itself
    (uvicorn), unless `.env` says something in front of it does (TLS_TERMINATED_IN_FRONT)."""
    return settings.kube_mlflow_service != "ClusterIP" and not settings.tls_terminated_in_front


def ingress_tls_secret(settings: Settings) -> str:
    """The Secret of the Ingress's certificate: .env's, cert-manager's, or trackstack's own."""
    if settings.kube_ingress_tls_secret:
        return settings.kube_ingress_tls_secret
    return ISSUED_SECRET if settings.kube_ingress_cert_issuer else TLS_SECRET


def needs_tls_secret(settings: Settings) -> bool:
    """Whether `invoke deploy` applies trackstack's certificate as the Secret TLS_SECRET."""
    return mlflow_serves_tls(settings) or bool(
        settings.kube_ingress_host and ingress_tls_secret(settings) == TLS_SECRET
    )


def certificate_names(settings: Settings) -> list[str]:
    """Names trackstack's certificate covers besides MLFLOW_PUBLIC_HOSTS and loopback: the Ingress's host."""
    return [settings.kube_ingress_host] if settings.kube_ingress_host else []


def render_tls_secret(settings: Settings, cert_pem: str, key_pem: str) -> str:
    """The TLS Secret's document (the key in it): for kubectl's stdin only, never a file."""
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TLS_SECRET, "namespace": namespace(settings), "labels": labels(settings, "tls")},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
    }
    return json.dumps(document)


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


# Requests are what the scheduler reserves (measured idle use, rounded up); limits what one pod
# may take before it is throttled or killed. MLflow's grow with MLFLOW_WORKERS (resources()).
RESOURCES = {
    POSTGRES.name: Resources("100m", "256Mi", "1", "1Gi"),
    MINIO.name: Resources("100m", "256Mi", "1", "1Gi"),
    PGADMIN.name: Resources("50m", "256Mi", "1", "768Mi"),
}


@dataclass(frozen=True)
class PodUser:
    """Who a pod's processes are (Pod Security "restricted": never root) and what else its image needs."""

    uid: int
    fs_group: int | None = None  # the group its volume is made writable for
    # A port below 1024 as that user: the kernel's namespaced sysctl, one that "restricted" allows (with
    # no_new_privs the file capability an image sets on its server for it is not granted).
    low_ports: bool = False
    # That file capability must still be in the bounding set, or the kernel refuses to run the file at
    # all; NET_BIND_SERVICE is the one capability "restricted" lets a container add.
    capabilities: tuple[str, ...] = ()
    # Where the image writes outside its volume: an emptyDir on each, so that its root filesystem is
    # read-only. None: it writes inside its own application folder, so its root stays writable.
    scratch: tuple[str, ...] | None = None


# The uid each image runs its server as: MLflow's image's own user (Dockerfile.mlflow.j2); pgAdmin's
# (its USER 5050, on port 80); postgres (the official image runs as uid 999 when started as it, with
# PGDATA writable, and skips its root-only steps); MinIO (any uid, given a writable /data); SeaweedFS
# (its image's user `seaweed` is uid and gid 1000; started as that user, its entrypoint skips the
# chown of /data it does as root and runs weed directly, so /data must be writable for gid 1000).
# What each writes besides its volume: MLflow its temporary files (an artifact upload is staged there)
# and its login configuration in its home (templates/mlflow/start_with_auth.py); Postgres its socket
# and lock in /var/run/postgresql; MinIO its certificates folder in $HOME/.minio, HOME being / for a
# uid its image does not list. pgAdmin's entrypoint writes the PGADMIN_CONFIG_* variables into
# /pgadmin4/config_distro.py, a file of its application folder: its root stays writable (docs/kubernetes.md).
_TMP = "/tmp"  # noqa: S108 - the container's own, an emptyDir of its pod
POD_USERS = {
    MLFLOW.name: PodUser(10001, scratch=(_TMP, "/home/mlflow")),
    POSTGRES.name: PodUser(999, fs_group=999, scratch=(_TMP, "/var/run/postgresql")),
    MINIO.name: PodUser(1000, fs_group=1000, scratch=(_TMP, "/.minio")),
    PGADMIN.name: PodUser(5050, fs_group=PGADMIN.fs_group, low_ports=True, capabilities=("NET_BIND_SERVICE",)),
}
# The prepare Job's pods, by app.kubernetes.io/name (what the NetworkPolicies select them by).
PREPARE_LABEL = f"{MLFLOW.name}-prepare"
# The scheduled backup's CronJob and its pods; they run as the Postgres image's own user.
BACKUP_LABEL = backup_image.SERVICE
BACKUP_USER = PodUser(999)
# The scheduled `mlflow gc`'s CronJob and its pods (and `invoke gc`'s Job): MLflow's image and pod user.
GC_LABEL = mlflow_gc.SERVICE
GC_JOB_PREFIX = f"{GC_LABEL}-now-"


def storage(settings: Settings) -> dict[str, str]:
    """The size each data service's claim asks for, by service."""
    return {service.name: getattr(settings, f"kube_{service.name}_storage") for service in data_services(settings)}


_UNITS = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


def quantity_bytes(quantity: str) -> float:
    """A storage quantity in bytes (the API server may write 1024Mi back as 1Gi)."""
    number = quantity.rstrip("kMGTPEi")
    return float(number) * _UNITS.get(quantity[len(number) :], 1)


def resized_claims(settings: Settings, statefulsets: list[dict[str, Any]]) -> list[Problem]:
    """Sizes in `.env` that differ from the claim templates the StatefulSets running now were created with:
    Kubernetes refuses to change a StatefulSet's claim template."""
    wanted = storage(settings)
    problems = []
    for item in statefulsets:
        name = item["metadata"]["name"]
        templates = item["spec"].get("volumeClaimTemplates") or [{}]
        had = templates[0].get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        if name not in wanted or had is None or quantity_bytes(had) == quantity_bytes(wanted[name]):
            continue
        key = f"KUBE_{name.upper()}_STORAGE"
        claim = f"{templates[0]['metadata']['name']}-{name}-0"
        patch = json.dumps({"spec": {"resources": {"requests": {"storage": wanted[name]}}}})
        problems.append(
            Problem(
                key,
                repr(wanted[name]),
                f"the StatefulSet {name} was created with claims of {had}, and Kubernetes does not change that",
                f"set {key}={had} again; to grow the volume, `kubectl -n {namespace(settings)} patch pvc {claim} "
                f"-p '{patch}'` (its StorageClass must allow expansion), then `invoke undeploy` and `invoke deploy` "
                "with the new size (the claims and the data stay)",
            )
        )
    return problems


def changed_stores(settings: Settings, statefulsets: list[dict[str, Any]]) -> list[Problem]:
    """A deployed artifact store other than ARTIFACT_STORE's: its StatefulSet's claim template names the
    other store's volume, which Kubernetes does not change (the claims stay, so undeploy and deploy do)."""
    store = settings.store
    for item in statefulsets:
        templates = item["spec"].get("volumeClaimTemplates") or [{}]
        had = templates[0].get("metadata", {}).get("name")
        if item["metadata"]["name"] != store.name or store.volume is None or had in (None, store.volume.name):
            continue
        return [
            Problem(
                "ARTIFACT_STORE",
                repr(settings.artifact_store),
                f"the deployed artifact store keeps its data in claims {had}, {store.product}'s are "
                f"{store.volume.name}, and Kubernetes does not change a StatefulSet's claims",
                "`invoke backup` first if you mean to move the artifacts, then `invoke undeploy` (the claims and the "
                "data stay) and `invoke deploy`; `invoke restore PATH` then brings the artifacts into the new store",
            )
        ]
    return []


def workloads(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The workloads of a deployed stack by kind, in the order `invoke status` shows them."""
    mlflow = (MLFLOW.name, PERIODIC) if settings.mlflow_job_execution else (MLFLOW.name,)
    return {"statefulset": tuple(s.name for s in data_services(settings)), "deployment": mlflow}


@dataclass(frozen=True)
class MlflowWorkload:
    """A Deployment of MLflow servers."""

    name: str
    replicas: int
    environment: dict[str, str]
    rolling: bool  # a new pod ready before an old one stops; else the old stops first (Recreate)


def mlflow_workloads(settings: Settings) -> list[MlflowWorkload]:
    """MLflow's replicas behind the Service; with the job runner on, one more pod for its periodic jobs.

    MLflow asks that one instance of a multi-replica deployment runs its periodic jobs. A Deployment's
    pods have no slot to pick one by (Swarm's task slot 1), so the replicas run none and a Deployment
    of its own, one pod replaced by Recreate, runs them: never two at once, and never none for longer
    than a restart. The Service does not select it: it serves no requests.
    """
    environment = shared_server.mlflow_environment(settings) | {"TRACKSTACK_AUTH_PREPARED": "true"}
    if not settings.mlflow_job_execution:
        return [MlflowWorkload(MLFLOW.name, settings.mlflow_replicas, environment, rolling=True)]
    return [
        MlflowWorkload(MLFLOW.name, settings.mlflow_replicas, environment | {PERIODIC_TASKS: "false"}, rolling=True),
        MlflowWorkload(PERIODIC, 1, environment | {PERIODIC_TASKS: "true"}, rolling=False),
    ]


def resources(settings: Settings) -> dict[str, Resources]:
    """MLflow's: the server process and each worker (measured ~250 MiB each), and the job runner's ~1 GiB."""
    workers = settings.mlflow_workers
    jobs = 1024 if settings.mlflow_job_execution else 0
    mlflow = Resources("100m", f"{256 + 256 * workers + jobs // 2}Mi", f"{workers}", f"{1024 + 512 * workers + jobs}Mi")
    return RESOURCES | {MLFLOW.name: mlflow}


def namespace(settings: Settings) -> str:
    return settings.kube_namespace or settings.compose_project_name


def labels(settings: Settings, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": settings.compose_project_name,
        "app.kubernetes.io/part-of": "trackstack",
        "app.kubernetes.io/managed-by": "trackstack",
    }


def selector(settings: Settings) -> str:
    """The label selector of everything trackstack applied for this project."""
    return f"app.kubernetes.io/part-of=trackstack,app.kubernetes.io/instance={settings.compose_project_name}"


PREPARE_JOB_PREFIX = "mlflow-prepare-"


def prepare_job_name(settings: Settings, image: str) -> str:
    """The prepare Job: MLflow's version and the job's fingerprint (image, scripts, database, bucket, admin,
    hashes of MLflow's secrets) in its name, so that it runs again when any of them changes, and only then."""
    version = settings.mlflow_version.replace(".", "-")
    return f"{PREPARE_JOB_PREFIX}{version}-{shared_server.prepare_fingerprint(settings, image=image)}"


def credentials_version(settings: Settings) -> str:
    """Changes with any secret, so that pods roll when one does; a slow hash of the Swarm secrets' names."""
    names = shared_server.secret_names(settings)
    return hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()[:16]


def render_secret(settings: Settings) -> str:
    """The Secret's document, holding every credential: for kubectl's stdin only, never a file."""
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace(settings), "labels": labels(settings, "credentials")},
        "type": "Opaque",
        "stringData": {
            key.lower(): getattr(settings, key.lower()).get_secret_value()
            for key in (*SWARM_SECRET_KEYS, *backup_image.secret_keys(settings))
        },
    }
    return json.dumps(document)


def mlflow_hosts(settings: Settings) -> list[str]:
    """Host headers MLflow answers: the local ones, MLFLOW_PUBLIC_HOSTS, and the Ingress's host."""
    hosts = set(allowed_hosts(settings))
    # In the cluster, at its Service's port (MLFLOW_PORT on a LoadBalancer): the scheduled gc asks it there.
    hosts.add(f"{MLFLOW.name}:{mlflow_service_port(settings)}")
    if settings.kube_ingress_host:
        hosts.add(settings.kube_ingress_host)
    return sorted(hosts)


def mlflow_server_args(settings: Settings) -> list[str]:
    tls = (f"--ssl-certfile={TLS_MOUNT}/tls.crt", f"--ssl-keyfile={TLS_MOUNT}/tls.key")
    return shared_server.mlflow_server_args(
        settings, hosts=mlflow_hosts(settings), uvicorn=tls if mlflow_serves_tls(settings) else ()
    )


def _context(settings: Settings, image: str) -> dict[str, object]:
    return {
        "s": settings,
        "project": settings.compose_project_name,
        "namespace": namespace(settings),
        "labels": lambda name: labels(settings, name),
        "secret": SECRET,
        "pgadmin_servers_path": containers.PGADMIN_SERVERS_PATH,
        "credentials_version": credentials_version(settings),
        "resources": resources(settings),
        "image": image,
        "job_name": prepare_job_name(settings, image),
        "mlflow": MLFLOW,
        "auth_start": auth_start(),
        "users": POD_USERS,
        "prepare_label": PREPARE_LABEL,
        "secret_files": shared_server.secret_files,
    }


def render_base(settings: Settings, image: str) -> str:
    """The namespace, pgAdmin's server list and the three StatefulSets with their Services."""
    return render_template(
        "kubernetes/base.yaml.j2",
        **_context(settings, image),
        data_services=data_services(settings),
        images={service.name: settings.image(service) for service in data_services(settings)},
        environments={
            POSTGRES.name: {"POSTGRES_USER": settings.postgres_user, "POSTGRES_DB": settings.postgres_db,
                            # A folder inside the claim: a fresh volume may hold lost+found.
                            "PGDATA": f"{POSTGRES.volume.mount}/pgdata" if POSTGRES.volume else ""},
            MINIO.name: shared_server.store_environment(settings),
            PGADMIN.name: shared_server.pgadmin_environment(settings),
        },
        storage=storage(settings),
        servers_json=shared_server.render_servers_json(settings),
    )  # fmt: skip


def render_network(settings: Settings, image: str) -> str:
    """Who may reach which pod: nothing but what the stack needs (NetworkPolicies)."""
    return render_template(
        "kubernetes/network.yaml.j2",
        **_context(settings, image),
        postgres=POSTGRES,
        minio=settings.store,
        pgadmin=PGADMIN,
        database_clients=[MLFLOW.name, PERIODIC, PREPARE_LABEL, PGADMIN.name, BACKUP_LABEL, GC_LABEL],
        store_clients=[MLFLOW.name, PERIODIC, PREPARE_LABEL, BACKUP_LABEL, GC_LABEL],
    )


def render_prepare(settings: Settings, image: str) -> str:
    return render_template(
        "kubernetes/prepare.yaml.j2",
        **_context(settings, image),
        prepare_command=shared_server.prepare_command(settings),
        # The Job itself creates the logins database and admin (start_with_auth.py, not yet "prepared"),
        # and MLflow's role as the superuser (PREPARE_SECRETS).
        mlflow_environment=shared_server.prepare_environment(settings),
        prepare=dataclasses.replace(MLFLOW, secrets=PREPARE_SECRETS),
    )


def render_mlflow(settings: Settings, image: str, tls_version: str = "") -> str:
    """MLflow's Deployments, Service and Ingress; `tls_version`: a hash of the certificate MLflow serves
    (its pods roll when it changes)."""
    return render_template(
        "kubernetes/mlflow.yaml.j2",
        **_context(settings, image),
        mlflow_server=mlflow_server_args(settings),
        workloads=mlflow_workloads(settings),
        mlflow_service_port=mlflow_service_port(settings),
        serves_tls=mlflow_serves_tls(settings),
        tls_secret=TLS_SECRET,
        tls_mount=TLS_MOUNT,
        tls_version=tls_version,
        ingress_tls_secret=ingress_tls_secret(settings),
    )


def mlflow_service_port(settings: Settings) -> int:
    """The Service's port: MLFLOW_PORT on a LoadBalancer (what clients connect to), else MLflow's own."""
    return settings.ports["MLFLOW_PORT"] if settings.kube_mlflow_service == "LoadBalancer" else MLFLOW_CONTAINER_PORT


def render_backup(settings: Settings, image: str) -> str:
    """The scheduled backup's CronJob (BACKUP_SCHEDULE set; BACKUP_DEST a bucket: `deploy_problems`)."""
    secrets = {"POSTGRES_PASSWORD": "postgres_password", "STACK_S3_SECRET_KEY": "minio_root_password"}
    secrets |= {key: key.lower() for key in backup_image.secret_keys(settings)}
    return render_template(
        "kubernetes/backup.yaml.j2",
        **_context(settings, image),
        backup_label=BACKUP_LABEL,
        backup_user=BACKUP_USER,
        backup_image=backup_image.registry_image(settings),
        backup_secrets=secrets,
        backup_environment=backup_image.runner_environment(settings, target="kubernetes", dest=settings.backup_dest),
    )


def gc_environment(settings: Settings) -> dict[str, str]:
    """gc's variables: MLflow at its Service, over TLS where MLflow serves it itself. Its certificate is for
    the names students use, not the Service's in-cluster name: gc does not verify it there."""
    tls = mlflow_serves_tls(settings)
    environment = mlflow_gc.environment(settings, shared=True, scheme="https" if tls else "http",
                                        mlflow_address=f"{MLFLOW.name}:{mlflow_service_port(settings)}")  # fmt: skip
    return environment | ({"MLFLOW_TRACKING_INSECURE_TLS": "true"} if tls else {})


def render_gc(settings: Settings, image: str, *, job_name: str = "") -> str:
    """The scheduled gc's CronJob; with `job_name`, a Job that runs gc once now (`invoke gc`)."""
    return render_template(
        "kubernetes/gc.yaml.j2",
        **(_context(settings, image) | ({"job_name": job_name} if job_name else {})),
        schedule="" if job_name else settings.mlflow_gc_schedule,
        gc_label=GC_LABEL,
        gc=dataclasses.replace(MLFLOW, secrets=mlflow_gc.SHARED_SECRETS),
        gc_command=mlflow_gc.once_command(settings),
        gc_environment=gc_environment(settings),
    )


def render_kube(settings: Settings, image: str, tls_version: str = "") -> dict[str, str]:
    """The manifests in the order `invoke deploy` applies them: base, the prepare Job, MLflow, the backups, gc."""
    parts = {
        "base": render_base(settings, image) + "---\n" + render_network(settings, image),
        "prepare": render_prepare(settings, image),
        "mlflow": render_mlflow(settings, image, tls_version),
    }
    parts |= {"backup": render_backup(settings, image)} if settings.backup_schedule else {}
    return parts | ({"gc": render_gc(settings, image)} if settings.mlflow_gc_schedule else {})


def manifest_file(parts: Mapping[str, str]) -> str:
    """What `invoke deploy` writes to kubernetes.yaml for a look (no secret is in it)."""
    return "---\n".join(parts.values())


def mlflow_url(settings: Settings) -> str:
    """Where clients reach MLflow, as far as the settings tell."""
    if settings.kube_ingress_host:  # always with TLS
        return f"https://{settings.kube_ingress_host}"
    scheme = "https" if mlflow_serves_tls(settings) else "http"
    if settings.kube_mlflow_service == "NodePort":
        return f"{scheme}://{settings.host}:{settings.ports['MLFLOW_PORT']}"
    return f"{scheme}://127.0.0.1:{settings.ports['MLFLOW_PORT']}"


def deploy_problems(values: Mapping[str, str]) -> list[Problem]:
    """What raw `.env` values lack for Kubernetes; reported with every other problem, before anything runs."""
    problems = [
        p
        for p in shared_server.deploy_problems(values)
        if p.key in ("MLFLOW_IMAGE_REPOSITORY", "MLFLOW_AUTH", "ARTIFACT_STORE")
    ]
    if problems and problems[0].key == "MLFLOW_IMAGE_REPOSITORY":
        problems[0] = Problem(
            "MLFLOW_IMAGE_REPOSITORY",
            "''",
            "`invoke deploy` tags the MLflow image with it, and the cluster's nodes pull it from there",
            "set a registry repository the nodes pull from, e.g. registry.school.example/trackstack-mlflow "
            "(with MLFLOW_IMAGE_PUSH=false if the nodes have the image already)",
        )
    name = values.get("KUBE_NAMESPACE", "") or values.get("COMPOSE_PROJECT_NAME", "")
    if not values.get("KUBE_NAMESPACE") and name and not _LABEL.fullmatch(name):
        problems.append(
            Problem(
                "KUBE_NAMESPACE",
                "''",
                f"COMPOSE_PROJECT_NAME {name!r} is no Kubernetes namespace name",
                "set KUBE_NAMESPACE to lower-case letters, digits and '-', e.g. trackstack",
            )
        )
    if values.get("TLS_ACME_EMAIL", "").strip():
        problems.append(
            Problem(
                "TLS_ACME_EMAIL",
                repr(values["TLS_ACME_EMAIL"]),
                "on Kubernetes, public certificates are cert-manager's, not trackstack's proxy's",
                "empty TLS_ACME_EMAIL and set KUBE_INGRESS_CERT_ISSUER to a cert-manager ClusterIssuer "
                "(e.g. one for Let's Encrypt) with KUBE_INGRESS_HOST",
            )
        )
    dest = values.get("BACKUP_DEST", "")
    if values.get("BACKUP_SCHEDULE", "").strip() and dest and not dest.startswith("s3://"):
        problems.append(
            Problem(
                "BACKUP_DEST",
                repr(dest),
                "on Kubernetes scheduled backups go to a bucket: the namespace enforces Pod Security "
                "'restricted', which allows no node directory (hostPath), and a node's disk is not off the node",
                "set BACKUP_DEST=s3://bucket/prefix with BACKUP_S3_ENDPOINT and its keys",
            )
        )
    if values.get("KUBE_MLFLOW_SERVICE") == "NodePort":
        port = values.get("MLFLOW_PORT", "")
        if port.isdigit() and int(port) not in NODE_PORTS:
            problems.append(
                Problem(
                    "MLFLOW_PORT",
                    repr(port),
                    "KUBE_MLFLOW_SERVICE=NodePort publishes MLflow on this port of every node, "
                    "which Kubernetes allows only in 30000-32767",
                    "choose a port in 30000-32767, e.g. 30501, or KUBE_MLFLOW_SERVICE=ClusterIP",
                )
            )
    return problems
