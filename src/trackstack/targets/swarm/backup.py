"""How a backup and a restore (`trackstack.backups`) reach the data of a stack on Docker Swarm.

Postgres and MinIO run on the data node and publish nothing by default, so both are reached from
inside their own task containers with `docker exec`, on the engine in use: the data node's (run
the task there, or point DOCKER_HOST at it, as docs/swarm.md advises for the manager). Postgres'
client tools use its local socket, which the image trusts; dumps travel on stdin and stdout.
MinIO's own `mc` copies objects one by one through stdin and stdout; its login travels on stdin
into a config folder inside the container, never on a command line. Publishing MinIO for the
backup would change the service's spec and restart MinIO; a one-shot job cannot stream data back.

MLflow is scaled to 0 during a restore and back after; the prepare job then runs on the restored
data, as a deploy runs it: it upgrades an older schema and makes the admin's password the one in
.env (the replicas do neither: TRACKSTACK_AUTH_PREPARED).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from trackstack import database, engine
from trackstack.console import indent
from trackstack.project import Project
from trackstack.services import MINIO, MLFLOW, POSTGRES
from trackstack.settings import Settings
from trackstack.storage import StorageError
from trackstack.targets.base import unsupported
from trackstack.targets.swarm import apply
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.targets.swarm.state import task_container

# How long MLflow may take to stop, or to run its replicas on the restored (or the old) data.
TIMEOUT = 300
MINIO_API = next(e.container_port for e in MINIO.endpoints if e.port_key == "MINIO_API_PORT")


class McBucket:
    """The stack's bucket through `mc` in the MinIO task's container."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.mlflow_bucket
        self.container = ""
        self.config = f"/tmp/trackstack-mc-{secrets.token_hex(8)}"  # noqa: S108 - inside the container, mc makes it 700

    def _exec(self, *args: str, stdin: bool = False) -> list[str]:
        """`docker exec` of mc with its login; imported again when MinIO's container changed (a restart)."""
        container = task_container(self.settings, MINIO.name)
        if container != self.container:
            login = json.dumps({"url": f"http://127.0.0.1:{MINIO_API}", "accessKey": self.settings.minio_root_user,
                                "secretKey": self.settings.minio_root_password.get_secret_value(),
                                "api": "s3v4", "path": "auto"})  # fmt: skip
            engine.run(["docker", "exec", "-i", container, "mc", "--config-dir", self.config, "alias", "import",
                        "stack"], capture=True, input_text=login)  # fmt: skip
            self.container = container
        return ["docker", "exec", *(["-i"] if stdin else []), container, "mc", "--config-dir", self.config, *args]

    def _path(self, key: str = "") -> str:
        return f"stack/{self.name}/{key}"

    def listing(self) -> dict[str, str]:
        return {key: str(entry.get("etag", "")) for key, entry in self._entries().items()}

    def sizes(self) -> dict[str, int]:
        """Every object's key and size in bytes; empty when the bucket does not exist."""
        return {key: int(str(entry.get("size", 0))) for key, entry in self._entries().items()}

    def _entries(self) -> dict[str, dict[str, object]]:
        """`mc ls --json`'s entry of every object, by key."""
        result = engine.run(self._exec("--json", "ls", "--recursive", self._path()), capture=True, check=False)
        found: dict[str, dict[str, object]] = {}
        for line in result.stdout.splitlines():
            entry = json.loads(line)
            if entry.get("status") == "error":
                message = str(entry.get("error", {}).get("message", ""))
                if "does not exist" in message:
                    return {}
                raise StorageError(f"MinIO refused to list bucket {self.name}:\n{indent(message)}\n"
                                   "Fix: `invoke logs --service minio` shows why.")  # fmt: skip
            if entry.get("type") == "file":
                found[str(entry["key"])] = entry
        if result.returncode != 0 and not found:
            raise StorageError(f"mc could not list bucket {self.name}:\n{indent(result.stderr.strip())}")
        return found

    def ensure(self) -> None:
        engine.run(self._exec("mb", "--ignore-existing", self._path()), capture=True)

    def download(self, key: str, path: str) -> None:
        with open(path, "wb") as out:
            engine.stream(self._exec("cat", self._path(key)), stdout=out)

    def upload(self, key: str, path: str) -> None:
        with open(path, "rb") as source:
            engine.stream(self._exec("pipe", self._path(key), stdin=True), stdin=source)

    def remove(self, key: str) -> None:
        engine.run(self._exec("rm", self._path(key)), capture=True)

    def close(self) -> None:
        if self.container:
            engine.run(["docker", "exec", self.container, "rm", "-rf", self.config], capture=True, check=False)


@dataclass
class SwarmData:
    """The data of the project's stack on the swarm, as `trackstack.backups` reaches it."""

    project: Project
    target: str = "swarm"
    replicas: int = 0  # MLflow's before the stop

    @property
    def settings(self) -> Settings:
        return self.project.settings

    def _tool(self, tool: str, *options: str, database: str | None = None) -> list[str]:
        return ["docker", "exec", "-i", task_container(self.settings, POSTGRES.name), tool, *options,
                "-U", self.settings.postgres_user, "-d", database or self.settings.postgres_db]  # fmt: skip

    def psql(self, sql: str, *, database: str | None = None) -> str:
        options = ("--no-psqlrc", "--quiet", "-tA", "-v", "ON_ERROR_STOP=1")
        return engine.run(self._tool("psql", *options, database=database), capture=True,
                          input_text=sql).stdout.strip()  # fmt: skip

    def dump(self, database: str, out: IO[bytes]) -> None:
        engine.stream(self._tool("pg_dump", *_DUMP, database=database), stdout=out)

    def load(self, dump: IO[bytes], *, database: str) -> None:
        engine.stream(self._tool("pg_restore", *_RESTORE, database=database), stdin=dump)

    @contextmanager
    def bucket(self) -> Iterator[McBucket]:
        store = self.settings.store
        if store.s3_client != "mc":
            raise unsupported(
                self.target,
                "backup` / `invoke restore",
                f"{store.product}'s image ships no S3 client to run in its task (MinIO's has `mc`); "
                "on Kubernetes and Compose they carry its artifacts",
            )
        bucket = McBucket(self.settings)
        try:
            yield bucket
        finally:
            bucket.close()

    @property
    def _mlflow(self) -> str:
        return swarm.service_name(self.settings, MLFLOW.name)

    def stop_mlflow(self) -> None:
        self.replicas = self.replicas or swarmstate.desired_replicas(self._mlflow)
        engine.run(["docker", "service", "scale", "--detach", f"{self._mlflow}=0"], capture=True)
        swarmstate.wait_converged(self.project.name, (self._mlflow,), timeout=TIMEOUT)

    def start_mlflow(self) -> None:
        replicas = self.replicas or self.settings.mlflow_replicas
        engine.run(["docker", "service", "scale", "--detach", f"{self._mlflow}={replicas}"], capture=True)
        swarmstate.wait_converged(self.project.name, (self._mlflow,), timeout=TIMEOUT)

    def mlflow_ready(self) -> bool:
        found = swarmstate.services(self.project.name).get(self._mlflow)
        return found is not None and found.running == found.desired > 0

    def after_swap(self, backup_version: str) -> None:
        image = engine.run(["docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                            self._mlflow], capture=True).stdout.strip()  # fmt: skip
        apply.prepare(self.project, image)

    def data_services_back(self) -> None:
        names = tuple(swarm.service_name(self.settings, s.name) for s in (POSTGRES, self.settings.store))
        swarmstate.wait_converged(self.project.name, names, timeout=TIMEOUT)


_DUMP, _RESTORE = database.DUMP_OPTIONS, database.RESTORE_OPTIONS
