"""How a backup and a restore (`trackstack.backups`) reach the data of a stack on Kubernetes.

Postgres' client tools run in the Postgres pod (`kubectl exec`) over its local socket, which the
image trusts; dumps travel on kubectl's stdin and stdout. MinIO is reached with the SDK through a
`kubectl port-forward` of its Service, as `invoke open` reaches it. MLflow's Deployments are scaled
to 0 during a restore and back to their replicas after; the prepare Job then runs again on the
restored data, as a deploy runs it: it upgrades an older schema and makes the admin's password the
one in .env (the replicas do neither: TRACKSTACK_AUTH_PREPARED).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from trackstack import database
from trackstack.project import Project
from trackstack.services import MLFLOW, POSTGRES
from trackstack.settings import Settings
from trackstack.storage import MinioBucket
from trackstack.targets.base import Forward
from trackstack.targets.kubernetes import access, apply
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.kubernetes.apply import kubectl

# How long MLflow may take to stop, or to roll out on the restored (or the old) data.
TIMEOUT = 300


@dataclass
class KubernetesData:
    """The data of the stack in `.env`'s namespace, as `trackstack.backups` reaches it."""

    project: Project
    target: str = "kubernetes"
    replicas: dict[str, int] = field(default_factory=dict)  # MLflow's Deployments before the stop

    @property
    def settings(self) -> Settings:
        return self.project.settings

    def psql(self, sql: str, *, database: str | None = None) -> str:
        return access.psql(self.project, sql, database=database)

    def _tool(self, tool: str, *options: str, database: str) -> list[str]:
        return kubectl(self.settings, "exec", "-i", f"{POSTGRES.name}-0", "-c", POSTGRES.name, "--", tool, *options,
                       "-U", self.settings.postgres_user, "-d", database)  # fmt: skip

    def dump(self, database: str, out: IO[bytes]) -> None:
        apply.run_binary(self._tool("pg_dump", *_DUMP, database=database), stdout=out)

    def load(self, dump: IO[bytes], *, database: str) -> None:
        apply.run_binary(self._tool("pg_restore", *_RESTORE, database=database), stdin=dump)

    @contextmanager
    def bucket(self) -> Iterator[MinioBucket]:
        store = self.settings.store  # MinIO or SeaweedFS: an S3 API either way, which the MinIO SDK speaks
        port = next(e.container_port for e in store.endpoints if e.port_key == "MINIO_API_PORT")
        with access.port_forwards(self.settings, [Forward(store.name, 0, port)]) as forwarding:
            yield MinioBucket(self.settings, f"127.0.0.1:{forwarding.local[(store.name, port)]}")

    def _deployments(self) -> tuple[str, ...]:
        return kube.workloads(self.settings)["deployment"]

    def stop_mlflow(self) -> None:
        for name in self._deployments():
            found = apply.get(self.settings, "deployment", name)
            self.replicas.setdefault(name, int(found["spec"].get("replicas", 1)))
            apply.run(kubectl(self.settings, "scale", f"deployment/{name}", "--replicas=0"))
        for name in self._deployments():
            # check=False: with no pod left, some kubectl versions say "no matching resources" and fail.
            pods = f"{kube.selector(self.settings)},app.kubernetes.io/name={name}"
            apply.run(
                kubectl(self.settings, "wait", "--for=delete", "pods", "-l", pods, f"--timeout={TIMEOUT}s"), check=False
            )

    def start_mlflow(self) -> None:
        wanted = self.replicas or {name: 1 for name in self._deployments()}
        for name, count in wanted.items():
            apply.run(kubectl(self.settings, "scale", f"deployment/{name}", f"--replicas={count}"))
        apply.wait_rollout(self.settings, "deployment", tuple(wanted), timeout=TIMEOUT)

    def mlflow_ready(self) -> bool:
        found = apply.get(self.settings, "deployment", MLFLOW.name)
        wanted = int(found["spec"].get("replicas", 0))
        return wanted > 0 and int(found.get("status", {}).get("readyReplicas", 0)) == wanted

    def after_swap(self, backup_version: str) -> None:
        found = apply.get(self.settings, "deployment", MLFLOW.name)
        image = str(found["spec"]["template"]["spec"]["containers"][0]["image"])
        # The Job of this image completed on the old data: run it again on the restored data.
        job = kube.prepare_job_name(self.settings, image)
        apply.run(kubectl(self.settings, "delete", "job", job, "--ignore-not-found", "--wait=true",
                          f"--timeout={TIMEOUT}s"))  # fmt: skip
        apply.prepare(self.settings, image, kube.render_kube(self.settings, image)["prepare"], timeout=TIMEOUT)

    def data_services_back(self) -> None:
        apply.wait_rollout(self.settings, "statefulset", (POSTGRES.name, self.settings.store.name), timeout=TIMEOUT)


_DUMP, _RESTORE = database.DUMP_OPTIONS, database.RESTORE_OPTIONS
