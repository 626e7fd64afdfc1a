"""A scratch Compose stack for the optional benchmarks: its own project, ports and copy of the tree.

`bench/artifact_stores.py` and `bench/class_backup.py` bring up a stack, fill it, switch it and
delete it. They never do that to the user's stack: theirs is a Compose project of its own
(`tsbenchstores`, `tsbenchbackup`) on the course's ports plus an offset of its own, with an env file
written like `invoke init` writes one (strong random secrets), run from a copy of the checkout's
files in a temporary folder, so that even the files `invoke up` renders (compose.yaml, ...) are not
the checkout's. `close()` takes it down with its volumes; the MLflow image it builds
(`<project>-mlflow:<version>`, from the layer cache when the user's was built) stays, like the
bench's `tsbench` image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench import ROOT, BenchError, say
from bench.stacks import containers, invoke_command
from trackstack import engine
from trackstack.engine import compose_args, docker_env
from trackstack.envfile import create_env
from trackstack.paths import ENV_FILE_VARIABLE
from trackstack.ports import port_is_free
from trackstack.project import Project
from trackstack.services import ENDPOINTS
from trackstack.validation import load_settings

# The units `docker stats` prints memory in (Go's units.BytesSize: binary; decimal ones accepted too).
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "kb": 1000, "mb": 1000**2,
          "gb": 1000**3, "tb": 1000**4}  # fmt: skip


def shifted_ports(offset: int) -> dict[str, int]:
    """Every published port's `.env` key at the course's port plus `offset`."""
    return {endpoint.port_key: endpoint.course_port + offset for endpoint in ENDPOINTS}


def with_values(text: str, values: Mapping[str, str]) -> str:
    """An env file's text with each key of `values` set (its line replaced; appended when it had none)."""
    lines = text.splitlines(keepends=True)
    out = [f"{key}={values[key]}\n" if (key := line.partition("=")[0].strip()) in values else line for line in lines]
    present = {line.partition("=")[0].strip() for line in lines}
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    return "".join(out) + "".join(f"{key}={value}\n" for key, value in values.items() if key not in present)


def memory_bytes(usage: str) -> int:
    """Bytes of `docker stats`' MemUsage column (`45.3MiB / 23.5GiB`: the part before the slash)."""
    text = usage.split("/", 1)[0].strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :].strip()
    try:
        return round(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        raise BenchError(f"cannot read a memory size from {usage!r}") from None


def copy_tree(target: Path) -> None:
    """The checkout's tracked and unignored files into `target` (as .ci/run's lanes do): no `.env`, no
    rendered files, no backups of the user's."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout  # fmt: skip
    for name in filter(None, listing.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a deleted but still listed file is skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


class ScratchStack:
    """A Compose stack of the bench's own (see the module's docstring); use it as a context manager."""

    def __init__(self, project: str, offset: int, overrides: Mapping[str, str] | None = None) -> None:
        self.name = project
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{project}-")
        self.root = Path(self._tmp.name) / "tree"
        self.root.mkdir()
        ports = shifted_ports(offset)
        taken = [port for port in ports.values() if not port_is_free("127.0.0.1", port)]
        if taken:
            self._tmp.cleanup()
            raise BenchError(f"ports {taken} are in use (a stack left by an earlier run? `docker ps`); nothing started")
        copy_tree(self.root)
        self.env_file = self.root / ".env"
        create_env(ROOT / ".env.example", self.env_file)
        values = {key: str(port) for key, port in ports.items()}
        self.write_env(self.env_file, {"COMPOSE_PROJECT_NAME": project, **values, **(overrides or {})})

    @property
    def workdir(self) -> Path:
        """A folder for the bench's own files (backups, data), deleted with the stack."""
        return Path(self._tmp.name)

    def write_env(self, path: Path, values: Mapping[str, str], source: Path | None = None) -> Path:
        """`source` (default: the stack's env file) with `values` set, as `path` (mode 600)."""
        text = (source or self.env_file).read_text(encoding="utf-8")
        path.write_text(with_values(text, values), encoding="utf-8", newline="\n")
        path.chmod(0o600)
        return path

    def variant(self, **values: str) -> Path:
        """A copy of the env file with `values` set (as .ci/run makes `.env.seaweedfs`)."""
        path = self.root / (".env." + "-".join(f"{k.lower()}-{v}" for k, v in values.items()))
        return self.write_env(path, values)

    def project(self, env_file: Path | None = None) -> Project:
        path = env_file or self.env_file
        return Project(root=self.root, env_file=path, settings=load_settings(path))

    def invoke(self, args: Sequence[str], env_file: Path | None = None) -> float:
        """`invoke ARGS` in the copy, on `env_file` (TRACKSTACK_ENV_FILE, as a user would): its seconds."""
        return run_invoke(args, env_file or self.env_file, self.root)

    def service_container(self, service: str, env_file: Path | None = None) -> str:
        found = [cid for cid, name in containers(self.project(env_file)).items() if name == service]
        if not found:
            raise BenchError(f"no running {service} container in project {self.name}")
        return found[0]

    def close(self) -> None:
        say(f"taking the bench's stack {self.name} down, with its volumes")
        engine.run(compose_args(self.project(), "down", "--remove-orphans", "--volumes"), capture=True, check=False)
        # The compose file names only the last store's volume: the other's goes by the project's label.
        label = f"label=com.docker.compose.project={self.name}"
        left = engine.run(["docker", "volume", "ls", "--quiet", "--filter", label], capture=True).stdout.split()
        if left:
            engine.run(["docker", "volume", "rm", *left], capture=True, check=False)
        self._tmp.cleanup()

    def __enter__(self) -> ScratchStack:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def run_invoke(args: Sequence[str], env_file: Path, cwd: Path) -> float:
    """`invoke ARGS` from `cwd` pointed at `env_file`; the seconds it took, from launch to exit."""
    env = docker_env() | {ENV_FILE_VARIABLE: str(env_file)}
    command = [*invoke_command(), *args]
    say(f"$ {ENV_FILE_VARIABLE}={env_file.name} invoke {' '.join(args)}")
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise BenchError(f"`invoke {' '.join(args)}` failed (exit {result.returncode}):\n{tail}")
    return seconds


def container_memory(container: str, samples: int = 3, every: float = 2.0) -> int:
    """The median of `samples` `docker stats --no-stream` readings of the container's memory, in bytes."""
    readings = []
    for index in range(samples):
        if index:
            time.sleep(every)
        usage = engine.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                           capture=True).stdout  # fmt: skip
        readings.append(memory_bytes(usage))
    return sorted(readings)[len(readings) // 2]
