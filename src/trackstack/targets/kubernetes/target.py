"""A shared server on Kubernetes (`DEPLOY_TARGET=kubernetes`, `invoke deploy`), as one `Target`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trackstack import backups
from trackstack.auth import Server
from trackstack.backup_format import Counts
from trackstack.console import say
from trackstack.doctor import KUBERNETES_CONTEXT, Check
from trackstack.envfile import read_env_file
from trackstack.project import Project
from trackstack.services import SERVICE_NAMES
from trackstack.targets.base import Link, Status, unsupported
from trackstack.targets.kubernetes import access, apply, render, views
from trackstack.targets.kubernetes.apply import KubeError, kubectl
from trackstack.targets.kubernetes.backup import KubernetesData


@dataclass(frozen=True)
class KubernetesTarget:
    """The project's stack in the namespace and context `.env` names."""

    project: Project
    name: str = "kubernetes"

    def up(self, *, timeout: float) -> None:
        apply.deploy(self.project, timeout=timeout)
        say("ready:")
        access.print_urls(self.project)

    def down(self) -> None:
        apply.undeploy(self.project)

    def status(self) -> Status:
        return Status(apply.STATUS_HEADER, apply.status_rows(self.project.settings) or [])

    def links(self) -> list[Link]:
        return views.links(self.project.settings)

    def print_urls(self) -> None:
        access.print_urls(self.project)

    def open_uis(self) -> None:
        access.open_uis(self.project)

    def logs(self, service: str, *, follow: bool, tail: int) -> None:
        apply.stream(log_command(self.project, service, follow=follow, tail=tail))

    @contextmanager
    def mlflow_server(self) -> Iterator[Server]:
        with access.server(self.project) as server:
            yield server

    def psql(self, sql: str, *, database: str | None = None) -> str:
        return access.psql(self.project, sql, database=database)

    def doctor_checks(self) -> list[Check]:
        return [*context_checks(self.project), *views.exposure(self.project.settings)]

    def artifact_sizes(self) -> dict[str, int]:
        apply.require_context(self.project.settings)
        with KubernetesData(self.project).bucket() as bucket:
            return bucket.sizes()

    def backup(self, into: Path) -> Path:
        apply.require_context(self.project.settings)
        return backups.backup(KubernetesData(self.project), into)

    def restore(self, path: Path, *, yes: bool) -> Counts:
        apply.require_context(self.project.settings)
        return backups.restore(KubernetesData(self.project), path, yes=yes)

    def gc(self) -> None:
        # Its one-off Job ran, but its output did not reach the task (the live suite saw none): not offered yet.
        raise unsupported(
            "kubernetes",
            "gc",
            "MLFLOW_GC_SCHEDULE runs it as a CronJob; `kubectl create job --from=cronjob/NAME` runs it now",
        )


def log_command(project: Project, service: str, *, follow: bool, tail: int) -> list[str]:
    """`kubectl logs` of one service's pods, or of every pod of the stack, each line prefixed with its pod."""
    settings = project.settings
    if service and service not in SERVICE_NAMES:
        raise KubeError(f"no service {service!r} in the deployed stack. Fix: choose one of {', '.join(SERVICE_NAMES)}")
    selector = render.selector(settings) + (f",app.kubernetes.io/name={service}" if service else "")
    # One request per pod: every MLflow replica and the data services at once.
    return kubectl(settings, "logs", "-l", selector, "--prefix", f"--tail={tail}", "--max-log-requests=20",
                   *(["--follow"] if follow else []))  # fmt: skip


def context_checks(project: Project) -> list[Check]:
    """`invoke doctor` on Kubernetes: the context answers, and `.env` has what `invoke deploy` needs."""
    try:
        apply.require_context(project.settings)
    except KubeError as error:
        reason, _, fix = str(error).partition(" Fix: ")
        found = [Check(KUBERNETES_CONTEXT, "fail", reason.strip(), fix.strip().rstrip("."))]
    else:
        context = project.settings.kube_context or "the current context"
        found = [Check(KUBERNETES_CONTEXT, "ok", f"{context} answers; namespace {render.namespace(project.settings)}")]
    values, _ = read_env_file(project.env_file)
    problems = render.deploy_problems(values)
    if problems:
        detail = "; ".join(str(problem) for problem in problems)
        found.append(Check(".env for Kubernetes", "fail", detail, "edit .env as each line says, then `invoke deploy`"))
    return found
