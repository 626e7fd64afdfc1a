"""`invoke deploy`, `undeploy` and `status` on Kubernetes: the side effects, through kubectl.

The cluster is the one kubectl talks to: KUBE_CONTEXT of the kubeconfig that KUBECONFIG names
(else ~/.kube/config), or its current context. Every change is a server-side apply of what
`render.py` rendered; the Secret goes to kubectl's stdin and never to a file.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import IO, Any

from trackstack import backup_image, privileges, tls, upgrades
from trackstack.console import indent, relay, say, write_files
from trackstack.errors import TrackstackError
from trackstack.mlflow_image import build_image
from trackstack.project import Project
from trackstack.services import MLFLOW, PGADMIN, POSTGRES
from trackstack.settings import Settings
from trackstack.targets.kubernetes import render as kube


class KubeError(TrackstackError):
    """kubectl or the cluster refused or did not reach what was asked; the message says why and the fix."""


def _context(settings: Settings) -> list[str]:
    return ["--context", settings.kube_context] if settings.kube_context else []


def kubectl(settings: Settings, *args: str) -> list[str]:
    """A kubectl command line for this stack's context and namespace."""
    return ["kubectl", *_context(settings), "--namespace", kube.namespace(settings), *args]


NO_KUBECTL = (
    "kubectl is not installed or not on PATH. Fix: install kubectl within one minor version of the "
    "cluster (https://kubernetes.io/docs/tasks/tools/), then retry."
)


def run(args: Sequence[str], *, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, input=input_text, check=False)
    except FileNotFoundError:
        raise KubeError(NO_KUBECTL) from None
    if check and result.returncode != 0:
        raise KubeError(f"`{' '.join(args[:6])} ...` failed:\n{indent(result.stderr.strip())}")
    return result


def run_binary(args: Sequence[str], *, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """Run kubectl with binary data on stdin or stdout (a dump through `kubectl exec`)."""
    try:
        result = subprocess.run(list(args), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)
    except FileNotFoundError:
        raise KubeError(NO_KUBECTL) from None
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip()
        raise KubeError(f"`{' '.join(args[:6])} ...` failed:\n{indent(said)}")


def stream(args: Sequence[str]) -> None:
    """Run kubectl with its output on this terminal (`kubectl logs`): what it says is for the user."""
    try:
        subprocess.run(list(args), check=False)
    except FileNotFoundError:
        raise KubeError(NO_KUBECTL) from None


def apply(settings: Settings, text: str) -> None:
    """Server-side apply of manifests from stdin; trackstack owns the fields it sets."""
    run(kubectl(settings, "apply", "--server-side", f"--field-manager={kube.FIELD_MANAGER}", "--force-conflicts",
                "-f", "-"), input_text=text)  # fmt: skip


def grant_store(settings: Settings) -> None:
    """MLflow's own S3 user, allowed MLFLOW_BUCKET's objects only, its key MLFLOW_S3_SECRET_KEY's: made, or
    brought back to `.env`, on every deploy, inside the store's pod (`kubectl exec`), before the prepare
    Job checks that it reaches the bucket. MinIO: its `mc`, the root password from the pod's own secret
    file; SeaweedFS: `weed shell`, whose parts talk on loopback only. MLflow's key travels on stdin."""
    store = settings.store
    exec_in_store = kubectl(settings, "exec", "-i", f"{store.name}-0", "-c", store.name, "--")
    if settings.artifact_store == "seaweedfs":
        run([*exec_in_store, *privileges.WEED_SHELL], input_text=privileges.seaweedfs_configure(settings))
        say(f"SeaweedFS: MLflow's user {settings.mlflow_s3_access_key} may use bucket {settings.mlflow_bucket} only")
        return
    command = privileges.mc_grant_command(settings, endpoint=f"http://127.0.0.1:{kube.STORE_API_PORT}",
                                          root_file="/run/secrets/minio_root_password",
                                          own_file="/dev/stdin")  # fmt: skip
    said = run([*exec_in_store, *command], input_text=settings.mlflow_s3_secret_key.get_secret_value())
    say(said.stdout.strip())


def get(settings: Settings, *what: str) -> dict[str, Any]:
    result = run(kubectl(settings, "get", *what, "-o", "json"))
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def require_context(settings: Settings) -> None:
    """The context exists and its API server answers; otherwise say which key or step fixes it."""
    contexts = run(["kubectl", "config", "get-contexts", "-o", "name"], check=False)
    names = contexts.stdout.split()
    if settings.kube_context and settings.kube_context not in names:
        raise KubeError(
            f"KUBE_CONTEXT={settings.kube_context!r} is not a context of your kubeconfig "
            f"(it has: {', '.join(names) or 'none'}). Fix: set KUBE_CONTEXT to one of them, or set KUBECONFIG."
        )
    if not settings.kube_context and not names:
        raise KubeError("kubectl has no kubeconfig context. Fix: set KUBECONFIG (or ~/.kube/config), then retry.")
    probe = run(["kubectl", *_context(settings), "version", "--output=json", "--request-timeout=10s"], check=False)
    if probe.returncode != 0:
        raise KubeError(f"the cluster does not answer:\n{indent(probe.stderr.strip())}\nFix: check KUBE_CONTEXT.")


def deploy(project: Project, *, timeout: float = 600) -> None:
    """Build (and push) MLflow's image, apply the Secret and the data services, prepare once, roll MLflow."""
    settings = project.settings
    started = time.monotonic()
    require_context(settings)
    image = build_image(project, push=settings.mlflow_image_push)
    if settings.backup_schedule:
        backup_image.build_for_shared_server(project)
    # trackstack's certificate (its own CA's, or .env's files) where the Ingress or MLflow itself serves it.
    server_tls = tls.ensure(project.root, settings, kube.certificate_names(settings)) if kube.needs_tls_secret(
        settings) else None  # fmt: skip
    parts = kube.render_kube(settings, image, server_tls.version if server_tls else "")
    write_files(project.root, {kube.MANIFEST_FILE: kube.manifest_file(parts)})
    namespace = kube.namespace(settings)
    statefulsets = get(settings, "statefulsets", "-l", kube.selector(settings))["items"]
    resized = kube.resized_claims(settings, statefulsets) + kube.changed_stores(settings, statefulsets)
    if resized:
        raise KubeError("the volume sizes in .env are not those of the deployed claims; nothing was applied:\n"
                        + "\n".join(f"  - {problem}" for problem in resized))  # fmt: skip
    say(f"applying to namespace {namespace} (context {settings.kube_context or 'current'})")
    apply(settings, parts["base"].split("---\n", 1)[0])  # the namespace, before anything in it
    apply(settings, kube.render_secret(settings))
    if server_tls and server_tls.cert and server_tls.key:
        apply(settings, kube.render_tls_secret(settings, server_tls.cert.read_text(encoding="ascii"),
                                               server_tls.key.read_text(encoding="ascii")))  # fmt: skip
        if server_tls.ca:
            say(f"clients verify MLflow with {server_tls.ca.name} (a CA for this server's names only)")
    apply(settings, parts["base"])
    # The prepare Job needs Postgres and MinIO; pgAdmin finishes its first start meanwhile.
    wait_rollout(settings, "statefulset", (POSTGRES.name, settings.store.name), timeout=timeout)
    grant_store(settings)
    migrate(project, image, parts["prepare"], timeout=timeout)
    say(f"rolling out MLflow: {settings.mlflow_replicas} replicas of {image}")
    apply(settings, parts["mlflow"])
    if not settings.mlflow_job_execution:  # its periodic-jobs pod, from a deploy with the job runner on
        run(kubectl(settings, "delete", "deployment", kube.PERIODIC, "--ignore-not-found"))
    if "backup" in parts:
        apply(settings, parts["backup"])
        say(f"scheduled backups ({settings.backup_schedule}, UTC) to {settings.backup_dest}")
    else:  # a CronJob of a deploy with BACKUP_SCHEDULE set
        run(kubectl(settings, "delete", "cronjob", kube.BACKUP_LABEL, "--ignore-not-found"))
    if "gc" in parts:
        apply(settings, parts["gc"])
        say(f"scheduled mlflow gc ({settings.mlflow_gc_schedule}, UTC) of runs deleted "
            f"{settings.mlflow_gc_older_than} ago")  # fmt: skip
    else:  # a CronJob of a deploy with MLFLOW_GC_SCHEDULE set
        run(kubectl(settings, "delete", "cronjob", kube.GC_LABEL, "--ignore-not-found"))
    wait_rollout(settings, "deployment", kube.workloads(settings)["deployment"], timeout=timeout)
    wait_rollout(settings, "statefulset", (PGADMIN.name,), timeout=timeout)
    say(f"deployed in {time.monotonic() - started:.0f}s")


def wait_rollout(settings: Settings, kind: str, names: Sequence[str], *, timeout: float) -> None:
    for name in names:
        result = run(kubectl(settings, "rollout", "status", f"{kind}/{name}", f"--timeout={int(timeout)}s"),
                     check=False)  # fmt: skip
        if result.returncode != 0:
            raise KubeError(
                f"{kind} {name} is not ready after {int(timeout)}s:\n{indent(result.stderr.strip())}\n"
                f"Fix: `kubectl -n {kube.namespace(settings)} describe {kind} {name}` and its pods' events say why."
            )
        say(f"{kind} {name} ready")


def deployed_mlflow_image(settings: Settings) -> str | None:
    """The image MLflow's Deployment runs; None when it does not exist or asks for no replica."""
    found = run(kubectl(settings, "get", "deployment", MLFLOW.name, "--ignore-not-found", "-o", "json"), check=False)
    if found.returncode != 0 or not found.stdout.strip():
        return None
    deployment = json.loads(found.stdout)
    if not deployment["spec"].get("replicas", 1):
        return None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def migrate(project: Project, image: str, manifest: str, *, timeout: float) -> None:
    """The prepare Job; over replicas of another MLflow version, after a backup and with them stopped."""
    settings = project.settings
    old_version = upgrades.version_change(deployed_mlflow_image(settings), settings.mlflow_version)
    run_job = functools.partial(prepare, settings, image, manifest, timeout=timeout)
    if old_version is None:
        run_job()
        return
    from trackstack.targets.kubernetes.backup import KubernetesData  # it builds on this module (its restore prepares)

    old = replace(project, settings=settings.model_copy(update={"mlflow_version": old_version}))
    upgrades.upgrade(KubernetesData(old), new_version=settings.mlflow_version, migrate=run_job,
                     into=project.root / "backups")  # fmt: skip


def prepare(settings: Settings, image: str, manifest: str, *, timeout: float) -> None:
    """Run the prepare Job unless one of the same fingerprint completed; remove the Jobs of older ones."""
    name = kube.prepare_job_name(settings, image)
    jobs = get(settings, "jobs", "-l", kube.selector(settings))["items"]
    done = any(job["metadata"]["name"] == name and job.get("status", {}).get("succeeded") for job in jobs)
    if done:
        say(f"MLflow's database and bucket are prepared for this image and these settings (Job {name})")
    else:
        say(f"preparing MLflow's database and bucket (Job {name})")
        apply(settings, manifest)
        state = wait_job(settings, name, timeout=timeout)
        logs = run(kubectl(settings, "logs", f"job/{name}", "--tail=200"), check=False).stdout
        relay(logs)
        if state != "Complete":
            raise KubeError(
                f"the prepare Job {name} failed; MLflow's replicas were not changed. Its output:\n{indent(logs)}\n"
                "Fix: read the output above."
            )
    for job in jobs:
        old = job["metadata"]["name"]
        if old != name and old.startswith(kube.PREPARE_JOB_PREFIX):
            run(kubectl(settings, "delete", "job", old, "--cascade=foreground", "--wait=false"), check=False)


def gc(project: Project, *, timeout: float = 3600) -> None:
    """`mlflow gc` once, now: a Job in the deployed MLflow image (the scheduled one's pod), its output passed on."""
    settings = project.settings
    require_context(settings)
    image = deployed_mlflow_image(settings)
    if image is None:
        raise KubeError("MLflow is not deployed. Fix: `invoke deploy` first.")
    name = f"{kube.GC_JOB_PREFIX}{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    apply(settings, kube.render_gc(settings, image, job_name=name))
    try:
        state = wait_job(settings, name, timeout=timeout)
        relay(run(kubectl(settings, "logs", f"job/{name}", "--tail=1000"), check=False).stdout)
    finally:
        run(kubectl(settings, "delete", "job", name, "--cascade=foreground", "--wait=false"), check=False)
    if state != "Complete":
        raise KubeError(f"mlflow gc {state}; its output is above. Fix: read it.")


def wait_job(settings: Settings, name: str, *, timeout: float) -> str:
    """Complete or Failed, whichever the Job reaches first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conditions = get(settings, "job", name).get("status", {}).get("conditions", [])
        for condition in conditions:
            if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                return str(condition["type"])
        time.sleep(2)
    return "timed out"


def undeploy(project: Project, *, timeout: float = 180) -> None:
    """Delete the workloads, Services and Ingress; keep the claims (the data), the Secret and the prepare Job.

    The completed Job (no pod runs) is the record that this image's migration ran with these settings:
    the next deploy of the same image and settings does not run it again.
    """
    settings = project.settings
    require_context(settings)
    kinds = "deployments,statefulsets,services,configmaps,ingresses"
    run(kubectl(settings, "delete", kinds, "-l", kube.selector(settings), "--ignore-not-found", "--wait=true",
                f"--timeout={int(timeout)}s"))  # fmt: skip
    run(kubectl(settings, "wait", "--for=delete", "pods", "-l", f"{kube.selector(settings)},!job-name",
                f"--timeout={int(timeout)}s"), check=False)  # fmt: skip
    say(f"workloads removed from namespace {kube.namespace(settings)}; its volume claims and the Secret are kept. "
        "`invoke deploy` brings it back with the data")  # fmt: skip


STATUS_HEADER = ("WORKLOAD", "READY", "IMAGE")


def status_rows(settings: Settings) -> list[tuple[str, ...]] | None:
    """Ready/desired pods per workload; None when nothing of this project is deployed."""
    found = get(settings, "statefulsets,deployments", "-l", kube.selector(settings))["items"]
    if not found:
        return None
    by_name = {(item["kind"].lower(), item["metadata"]["name"]): item for item in found}
    rows: list[tuple[str, ...]] = []
    for kind, names in kube.workloads(settings).items():
        for name in names:
            item = by_name.get((kind, name))
            if item is None:
                rows.append((f"{kind}/{name}", "absent", "-"))
                continue
            ready = item.get("status", {}).get("readyReplicas", 0)
            image = item["spec"]["template"]["spec"]["containers"][0]["image"]
            rows.append((f"{kind}/{name}", f"{ready}/{item['spec']['replicas']}", image))
    return rows
