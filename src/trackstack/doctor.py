"""`invoke doctor`: everything a first run needs, each result with a concrete fix."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from trackstack import advisories, engine
from trackstack.ports import busy_ports
from trackstack.problems import SettingsError
from trackstack.project import Project
from trackstack.settings import Settings, artifact_download_warning
from trackstack.validation import load_settings

Level = Literal["ok", "warn", "fail"]
# `invoke doctor`'s section on what the stack publishes and behind what; its checks' names start with it.
EXPOSURE = "exposure"

# The pinned upstream images are published for these engine architectures.
SUPPORTED_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
DISK_NEEDED_GB = 4.0  # images (~2.5 GB) plus room for data


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.level == "fail"


def check_env(env_file: Path) -> tuple[Check, Project | None]:
    try:
        settings = load_settings(env_file)
    except SettingsError as error:
        lines = [str(problem) for problem in error.problems]
        return Check(
            ".env", "fail", f"{len(lines)} problem(s): " + "; ".join(lines), "edit .env as each line says"
        ), None
    project = Project(root=env_file.parent, env_file=env_file, settings=settings)
    return Check(".env", "ok", f"{env_file} is valid (project {settings.compose_project_name})"), project


def check_docker(probe: engine.DockerProbe) -> list[Check]:
    problem = engine.docker_problem(probe)
    checks = [
        Check("docker CLI", "ok" if probe.cli else "fail", "installed" if probe.cli else "not found", problem or ""),
    ]
    if not probe.cli:
        return checks
    if probe.server_api is None:
        checks.append(Check("docker daemon", "fail", "not reachable", problem or ""))
        return checks
    api = ".".join(map(str, probe.server_api))
    checks.append(Check("docker daemon", "ok", f"Docker Engine {probe.server_version} (API {api})"))
    if probe.compose_version is None:
        checks.append(Check("docker compose", "fail", "Compose v2 plugin missing", problem or ""))
    else:
        checks.append(Check("docker compose", "ok", f"Compose {probe.compose_version}"))
    if probe.server_api < engine.START_INTERVAL_API:
        checks.append(
            Check(
                "engine features",
                "warn",
                "Engine older than 25: healthchecks cannot use start_interval, so first start is a few seconds slower",
                "update Docker Engine when you can (not required)",
            )
        )
    return checks


def check_architecture() -> Check:
    result = engine.run(["docker", "info", "--format", "{{.Architecture}}"], capture=True, check=False)
    arch = result.stdout.strip()
    if arch in SUPPORTED_ARCHITECTURES:
        return Check("architecture", "ok", f"{arch}: the pinned images exist for {SUPPORTED_ARCHITECTURES[arch]}")
    return Check(
        "architecture",
        "fail",
        f"{arch or 'unknown'}: the pinned images are published for amd64 and arm64 only",
        "use an amd64 or arm64 machine (Apple silicon and most PCs are fine)",
    )


def check_disk(path: Path) -> Check:
    root = engine.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture=True, check=False).stdout.strip()
    target = Path(root) if root and Path(root).exists() else path
    free_gb = shutil.disk_usage(target).free / 1e9
    if free_gb < DISK_NEEDED_GB / 2:
        level: Level = "fail"
    elif free_gb < DISK_NEEDED_GB:
        level = "warn"
    else:
        level = "ok"
    fix = (
        ""
        if level == "ok"
        else f"free some space (`docker system prune` removes unused images); {DISK_NEEDED_GB:.0f} GB is comfortable"
    )
    return Check("disk", level, f"{free_gb:.1f} GB free at {target}", fix)


def check_ports(project: Project) -> Check:

    problems = busy_ports(project.settings, engine.running_services(project))
    if problems:
        return Check("ports", "fail", "; ".join(p.reason for p in problems), "; ".join(p.fix for p in problems))
    ports = ", ".join(str(port) for port in project.settings.published_ports().values())
    return Check("ports", "ok", f"{ports} free (or held by this stack)")


# The first check of a shared server's target (Swarm's nodes, Kubernetes's context): checks with
# one of these names looked at a deployed stack, which `invoke deploy` brings up.
SWARM_NODES = "swarm nodes"
KUBERNETES_CONTEXT = "kubernetes context"


def next_command(checks: list[Check]) -> str:
    """What the checks prepared for: `deploy` when they looked at a shared server's target, else `up`."""
    return "deploy" if any(check.name in (SWARM_NODES, KUBERNETES_CONTEXT) for check in checks) else "up"


def _minor(version: str) -> tuple[int, int]:
    major, minor, *_ = (int(part) if part.isdigit() else 0 for part in [*version.split("."), "0", "0"])
    return major, minor


def check_mlflow_client(server_version: str, client_version: str | None) -> Check | None:
    """Warn when the `mlflow` installed here is newer (major.minor) than the server's: it may call what that lacks."""
    if client_version is None:
        return None
    server, client = _minor(server_version), _minor(client_version)
    if client <= server:
        return Check("mlflow client", "ok", f"{client_version}, not newer than the server's {server_version}")
    return Check(
        "mlflow client",
        "warn",
        f"the mlflow {client_version} installed here is newer than the server's {server_version}; "
        "newer clients may use APIs that the older server answers with errors",
        f"set MLFLOW_VERSION={client_version} in .env (`invoke lock` writes its lock; `invoke up` upgrades the "
        f"data, with a backup first), or `pip install 'mlflow-skinny=={server_version}'` here",
    )


def check_artifact_downloads(server_version: str) -> Check:
    """Whether the pinned MLflow server sends clients to download artifacts where they cannot reach."""
    warning = artifact_download_warning(server_version)
    if warning is None:
        return Check("artifact downloads", "ok", "clients download artifacts through the MLflow server")
    detail, _, fix = warning.partition(" Fix: ")
    return Check("artifact downloads", "warn", detail, fix)


# MinIO's community edition: its repository was archived in 2026 and its last image has a High
# advisory that no published image fixes (advisories.py).
MINIO_ADVISORY = advisories.MINIO.id


def check_advisories(settings: Settings) -> list[Check]:
    """The "exposure" section's last lines: the published advisories of the images `.env` pins, each with its fix."""
    found = [
        (advisory, f"MLflow {settings.mlflow_version} with logins")
        for advisory in (advisories.mlflow_auth(settings.mlflow_version) if settings.mlflow_auth else [])
    ]
    if settings.artifact_store == "minio":
        found += [(advisory, settings.minio_image) for advisory in advisories.minio(settings.minio_image)]
    found += [
        (advisory, f"{settings.proxy_image} (the TLS proxy)") for advisory in advisories.caddy(settings.proxy_image)
    ]
    if not found:
        return [Check(f"{EXPOSURE}: advisories", "ok", "no published advisory against the pinned images")]
    accepted = advisories.accepted(settings.mlflow_auth_accept_advisories)
    return [
        Check(
            f"{EXPOSURE}: {advisory.product} advisory",
            "warn",
            f"{advisory.id} ({advisory.severity}) in {what}: {advisory.affects}; "
            + (f"fixed in {advisory.fixed_in}" if advisory.product != "MinIO" else
               f"fixed only in source ({advisory.fixed_in}), in no published image")
            + (" (accepted in MLFLOW_AUTH_ACCEPT_ADVISORIES)" if advisory.id in accepted else ""),
            advisory.fix,
        )
        for advisory, what in found
    ]  # fmt: skip


def check_artifact_store(settings: Settings) -> Check:
    """Warn while the artifact store is MinIO: unmaintained, with an unfixed advisory. Not a blocker."""
    if settings.artifact_store != "minio":
        return Check("artifact store", "ok", f"{settings.store.product} ({settings.image(settings.store)})")
    return Check(
        "artifact store",
        "warn",
        "MinIO's community edition is unmaintained (its repository was archived in 2026); the last image, "
        f"{settings.minio_image}, has an unfixed High advisory ({MINIO_ADVISORY})",
        "move to SeaweedFS, which is maintained: ARTIFACT_STORE=seaweedfs in .env (docs/artifact-stores.md: "
        "it starts with an empty store of its own; MinIO's volume stays, and ARTIFACT_STORE=minio goes back)",
    )


def installed_mlflow() -> str | None:
    """The version of the MLflow client installed beside trackstack (mlflow, else mlflow-skinny)."""

    for name in ("mlflow", "mlflow-skinny"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def check_scheduled_backups(settings: Settings) -> list[Check]:
    """With BACKUP_SCHEDULE set: whether the newest verified backup at BACKUP_DEST is recent enough."""
    from trackstack.scheduled_backups import lateness  # boto3 loads only when a bucket is to be read

    if not settings.backup_schedule:
        return []
    late = lateness(settings)
    if late:
        return [Check("backups", "warn", late, "`invoke backups` lists what exists; `invoke logs --service backup`")]
    return [Check("backups", "ok", f"a verified backup within two periods of {settings.backup_schedule!r}")]


def run_checks(env_file: Path, target_checks: Callable[[Project], list[Check]]) -> list[Check]:
    """Docker, this machine, `.env`, then what the project's target checks (`Target.doctor_checks`)."""
    env_check, project = check_env(env_file)
    probe = engine.probe_docker()
    checks = check_docker(probe)
    docker_usable = engine.docker_problem(probe) is None
    if docker_usable:
        checks += [check_architecture(), check_disk(env_file.parent)]
    checks.append(env_check)
    if project is not None and docker_usable:
        checks += target_checks(project)
    if project is not None:
        client = check_mlflow_client(project.settings.mlflow_version, installed_mlflow())
        checks += [
            check_artifact_store(project.settings),
            check_artifact_downloads(project.settings.mlflow_version),
            *([client] if client else []),
            *check_advisories(project.settings),
            *check_scheduled_backups(project.settings),
        ]
    return checks


def report(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for check in checks:
        lines.append(f"[{marks[check.level]}] {check.name}: {check.detail}")
        if check.fix:
            lines.append(f"       fix: {check.fix}")
    return "\n".join(lines)
