"""The two stacks under test, on the same images and the same host ports, one at a time.

trackstack runs from this checkout as Compose project `tsbench` with its own env file; the
course's stack is a copy of its folder run as project `coursebaseline`. Both are driven
through the product's own engine (`compose_args`, `run`, `docker_env`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from bench import ROOT, BenchError, say
from trackstack import engine
from trackstack.dependency_lock import pins
from trackstack.engine import compose_args, docker_env
from trackstack.envfile import create_env, read_env_file
from trackstack.paths import ENV_FILE_VARIABLE
from trackstack.ports import port_is_free
from trackstack.project import Project
from trackstack.services import ENDPOINTS
from trackstack.settings import Settings
from trackstack.validation import load_settings

PROJECT = "tsbench"
BASELINE_PROJECT = "coursebaseline"
BASELINE_SOURCE = ROOT.parent / "shared" / "baseline" / "course"
# The course's ports, which the baseline publishes on every interface; trackstack's defaults are the same.
COURSE_PORTS = tuple(endpoint.course_port for endpoint in ENDPOINTS)
PORT_WAIT = 600.0  # seconds to wait for another stack to give the ports back


def run_tool(args: Sequence[str], env_file: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a Python tool (invoke, pytest) from the checkout, pointed at `env_file` like a user would."""
    env = docker_env() | {ENV_FILE_VARIABLE: str(env_file)}
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise BenchError(f"`{' '.join(args[:4])} ...` failed (exit {result.returncode}):\n{tail}")
    return result


def invoke_command() -> list[str]:
    """The `invoke` launcher of the interpreter running the bench (the venv's or nox's)."""
    script = Path(sys.executable).with_name("invoke")
    return [str(script)] if script.exists() else [sys.executable, "-m", "invoke"]


def wait_for_free_ports(ports: Sequence[int] = COURSE_PORTS, timeout: float = PORT_WAIT) -> None:
    """Another stack (a CI run, a colleague's) may hold the course ports: wait for it to go."""
    deadline = time.monotonic() + timeout
    announced = False
    # The baseline binds every interface, so the ports must be free on all of them.
    while taken := [port for port in ports if not port_is_free("0.0.0.0", port)]:  # noqa: S104
        if time.monotonic() > deadline:
            raise BenchError(f"ports {taken} still in use after {timeout:.0f}s (see `docker ps`); try again later")
        if not announced:
            say(f"ports {taken} are in use by another stack; waiting up to {timeout:.0f}s")
            announced = True
        time.sleep(5)


def containers(project: Project) -> dict[str, str]:
    """The project's running containers: full id -> service name."""
    label = '{{.ID}} {{.Label "com.docker.compose.service"}}'
    result = engine.run(
        ["docker", "ps", "--no-trunc", "--filter", f"label=com.docker.compose.project={project.name}",
         "--format", label],
        capture=True,
    )  # fmt: skip
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def image_size(ref: str) -> int:
    return int(engine.run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], capture=True).stdout)


def compose_up_wait(project: Project) -> float:
    """Seconds that plain `docker compose up --detach --wait` takes on the project's files."""
    started = time.monotonic()
    engine.run(compose_args(project, "up", "--detach", "--wait"), capture=True)
    return time.monotonic() - started


class Trackstack:
    """trackstack in this checkout, as project `tsbench` with its own env file."""

    def __init__(self, env_file: Path) -> None:
        self.env_file = env_file
        settings = load_settings(env_file)
        if settings.compose_project_name != PROJECT:
            raise BenchError(f"{env_file} names project {settings.compose_project_name!r}, not {PROJECT!r}")
        self.project = Project(root=ROOT, env_file=env_file, settings=settings)

    @property
    def settings(self) -> Settings:
        return self.project.settings

    def prepare(self) -> None:
        """Render and build the MLflow image and the compiled pgAdmin image now, so that no timed run builds."""
        run_tool([*invoke_command(), "build"], self.env_file)

    def down(self, *, volumes: bool) -> None:
        args = ["down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        engine.run(compose_args(self.project, *args), capture=True)

    def invoke_up(self) -> dict[str, float]:
        """`invoke up` (bench/start.py): seconds until it returned, reported the stack healthy, and seeded."""
        with tempfile.TemporaryDirectory(prefix="tsbench-start-") as tmp:
            out = Path(tmp) / "start.json"
            launched = time.monotonic()
            run_tool([sys.executable, "-m", "bench.start", str(out)], self.env_file)
            command = time.monotonic() - launched
            if not out.is_file():
                raise BenchError(
                    "`invoke up` succeeded without calling trackstack.targets.compose.apply.start"
                    ": update bench/start.py"
                )
            report = json.loads(out.read_text(encoding="utf-8"))
        offset = report["called"] - launched
        # Every service answered at the last of `answered` (empty when nothing had to start).
        healthy = max(report["answered"].values(), default=report["ready"])
        return {"command": command, "stack_healthy": offset + healthy, "seeded": offset + report["ready"]}


def course_mlflow_version(source: Path) -> str:
    """The MLflow release the course's image installs (its requirements.txt pins it)."""
    for line in (source / "mlflow" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name.strip().lower() == "mlflow":
            return version.strip()
    raise BenchError(f"no `mlflow==VERSION` line in {source / 'mlflow' / 'requirements.txt'}")


def make_env_file(path: Path, mlflow_version: str) -> None:
    """A `.env` like `invoke init` writes (strong random secrets), renamed to the bench project and
    on the course's MLflow release, so that both stacks run the same server code."""
    create_env(ROOT / ".env.example", path)
    replaced = {"COMPOSE_PROJECT_NAME": PROJECT, "MLFLOW_VERSION": mlflow_version}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(
        "".join(f"{key}={replaced[key]}\n" if (key := line.partition("=")[0]) in replaced else line for line in lines),
        encoding="utf-8",
        newline="\n",
    )
    say(f"wrote {path} (project {PROJECT}, MLflow {mlflow_version})")


class Baseline:
    """The course's compose folder, copied to a temporary directory, on trackstack's images."""

    def __init__(self, source: Path, workdir: Path, ours: Settings, mlflow_image: str) -> None:
        self.dir = workdir / "course"
        shutil.copytree(source, self.dir)
        for path in [self.dir, *self.dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        values, problems = read_env_file(self.dir / ".env.example")
        if problems:
            raise BenchError(f"the baseline's .env.example does not parse: {problems}")
        values |= {
            "BASE_POSTGRES_IMAGE": ours.postgres_image,
            "BASE_PGADMIN_IMAGE": ours.pgadmin_image,
            "BASE_MINIO_IMAGE": ours.minio_image,
            # The MinIO release image ships mc; the baseline overrides the entrypoint anyway.
            "BASE_MC_IMAGE": ours.minio_image,
            # Its own Dockerfile, built by build_baseline_image (main() checks that the release is trackstack's).
            "BASE_MLFLOW_IMAGE": mlflow_image,
        }
        (self.dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        self.verbatim = (self.dir / "compose.yaml").read_text(encoding="utf-8")
        # The verbatim minio-setup runs `mc mb` without --ignore-existing, so the baseline cannot
        # start again on its own data; the warm runs use this one-flag fix of it.
        self.restartable = self.verbatim.replace(
            "mc mb minioserver/mlflow;", "mc mb --ignore-existing minioserver/mlflow;"
        )
        if self.restartable == self.verbatim:
            raise BenchError("the baseline's `mc mb` line changed; update the warm-start patch in bench/stacks.py")
        self.project = Project(root=self.dir, env_file=self.dir / ".env", settings=client_view(ours, values))

    @property
    def settings(self) -> Settings:
        return self.project.settings

    def up(self, *, restartable: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
        (self.dir / "compose.yaml").write_text(
            self.restartable if restartable else self.verbatim, encoding="utf-8", newline="\n"
        )
        # --no-build: the bench built the MLflow image (build_baseline_image); Compose would build it unpinned.
        return engine.run(compose_args(self.project, "up", "--detach", "--no-build"), capture=True, check=check)

    def down(self, *, data: bool) -> None:
        # --volumes: the course keeps its data in bind mounts; what this removes is the anonymous
        # volume each new pgAdmin container gets (its image's VOLUME), which Compose never mounts
        # again and which the bench left behind, one per baseline start, until now.
        engine.run(compose_args(self.project, "down", "--remove-orphans", "--volumes"), capture=True, check=False)
        if data:
            for name in ("postgres_data", "minio_data"):
                empty_dir(self.dir / name, self.settings.postgres_image)


def client_view(ours: Settings, values: dict[str, str]) -> Settings:
    """The baseline as its clients and Compose see it, in trackstack's model: the probes, the MinIO
    client and `compose_args` then serve both stacks. Only the fields they read are the baseline's."""
    return ours.model_copy(
        update={
            "compose_project_name": BASELINE_PROJECT,
            "bind_address": "127.0.0.1",
            "ports": {endpoint.port_key: endpoint.course_port for endpoint in ENDPOINTS},
            "postgres_user": values["POSTGRES_USER"],
            "postgres_password": SecretStr(values["POSTGRES_PASSWORD"]),
            "postgres_db": "mlflow",  # what its MLflow uses (init.sql creates it)
            "minio_root_user": values["MINIO_ACCESS_KEY"],
            "minio_root_password": SecretStr(values["MINIO_SECRET_ACCESS_KEY"]),
            "mlflow_bucket": "mlflow",
        }
    )


def empty_dir(path: Path, image: str) -> None:
    """Delete a bind-mounted data folder; its files belong to container users (root in `image` can)."""
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        engine.run(["docker", "run", "--rm", "--user", "0", "-v", f"{path.parent}:/parent", "--entrypoint", "rm",
                    image, "-rf", f"/parent/{path.name}"], capture=True)  # fmt: skip


def baseline_dockerfile(text: str, base_image: str) -> str:
    """The course's MLflow Dockerfile on trackstack's base image, its pip install held to a lock.

    Unpinned, its requirements resolve today's PyPI, whose SQLAlchemy 2.1 breaks the course's
    MLflow release at start-up. The lock of that release (constraints/mlflow-<version>.txt) pins
    what PyPI had when it was current; the course's own pins (mlflow, psycopg2-binary, boto3) are
    the same versions in it. Installed is still only what the course's requirements ask for.
    """
    lines = [f"FROM {base_image}" if line.startswith("FROM ") else line for line in text.splitlines()]
    copy = "COPY requirements.txt /tmp/requirements.txt"
    install = "RUN pip install --no-cache-dir -r /tmp/requirements.txt"
    if copy not in lines or install not in lines:
        raise BenchError(f"the baseline's Dockerfile no longer has {copy!r} and {install!r}; update bench/stacks.py")
    lines.insert(lines.index(copy) + 1, "COPY constraints.txt /tmp/constraints.txt")
    lines[lines.index(install)] = install.replace("-r ", "--constraint /tmp/constraints.txt -r ")
    return "\n".join(lines) + "\n"


def check_pins_agree(requirements: str, lock: str) -> None:
    """The course's own `name==version` pins must be the lock's, or the lock would change its install."""
    locked = set(pins(lock))
    differ = [line for line in requirements.split() if "==" in line and line not in locked]
    if differ:
        raise BenchError(f"the course pins {', '.join(differ)}, which trackstack's lock does not: update the lock")


def build_baseline_image(source: Path, base_image: str, lock: Path, tag: str, workdir: Path, no_cache: bool) -> None:
    """Build the course's MLflow image (baseline_dockerfile) as `tag`."""
    context = workdir / "baseline-image"
    shutil.copytree(source / "mlflow", context)
    check_pins_agree((context / "requirements.txt").read_text(encoding="utf-8"), lock.read_text(encoding="utf-8"))
    dockerfile = context / "Dockerfile"
    dockerfile.chmod(0o644)
    dockerfile.write_text(
        baseline_dockerfile(dockerfile.read_text(encoding="utf-8"), base_image), encoding="utf-8", newline="\n"
    )
    # Its pins without their hashes: a hashed constraint would put the course's unhashed install in hash-checking mode.
    (context / "constraints.txt").write_text(
        "".join(f"{pin}\n" for pin in pins(lock.read_text(encoding="utf-8"))), encoding="utf-8", newline="\n"
    )
    engine.run(
        ["docker", "build", "--quiet", "-t", tag, *(["--no-cache"] if no_cache else []), str(context)], capture=True
    )
