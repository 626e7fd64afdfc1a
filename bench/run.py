"""Benchmark trackstack side by side with the course's hand-made stack (issue 6).

    python bench/run.py [--repeat N]

One invocation measures both stacks on the same images, one stack at a time on the same
host ports, and prints a table of medians (with min and max) and ratios; the table and every
sample go to bench/results/<timestamp>.json. See bench/README.md for what each row means.

The stacks: trackstack runs under the Compose project `tsbench` from its own env file
(default `.env.bench`, created with `invoke init`-style secrets when missing). The baseline
is a copy of the course folder in a temporary directory, run as project `coursebaseline`
with its `.env.example` and the BASE_* image variables pointed at trackstack's pinned images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASELINE_SOURCE = Path("/work/shared/baseline/course")
PROJECT = "tsbench"
BASELINE_PROJECT = "coursebaseline"
# The baseline publishes these fixed ports on every interface; trackstack's defaults are the same.
COURSE_PORTS = (5001, 5051, 9000, 9001, 5432)
PORT_WAIT = 600.0  # seconds to wait for another stack to give the ports back
READY_TIMEOUT = 300.0
POLL = 0.2
METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call

sys.path.insert(0, str(ROOT / "src"))

from trackstack.engine import Project, compose_args, docker_env  # noqa: E402
from trackstack.settings import Settings  # noqa: E402
from trackstack.validation import load_settings  # noqa: E402


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


def run(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise BenchError(f"`{' '.join(args[:6])} ...` failed (exit {result.returncode}):\n{tail}")
    return result


def timed(func: Callable[[], object]) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


# -- ports ---------------------------------------------------------------------------------


def busy(ports: Sequence[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))  # noqa: S104 - the baseline binds every interface
            except OSError:
                taken.append(port)
    return taken


def wait_for_free_ports(ports: Sequence[int] = COURSE_PORTS, timeout: float = PORT_WAIT) -> None:
    """Another stack (a CI run, a colleague's) may hold the course ports: wait for it to go."""
    deadline = time.monotonic() + timeout
    announced = False
    while taken := busy(ports):
        if time.monotonic() > deadline:
            raise BenchError(f"ports {taken} still in use after {timeout:.0f}s (see `docker ps`); try again later")
        if not announced:
            say(f"ports {taken} are in use by another stack; waiting up to {timeout:.0f}s")
            announced = True
        time.sleep(5)


# -- a quiet machine ----------------------------------------------------------------------------


def cpu_busy(seconds: float = 2.0) -> float:
    """Fraction of the machine's CPU time spent busy over the next `seconds`."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return idle, sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(max_busy: float, timeout: float = 300.0) -> float:
    """Other people's work on a shared 2-core machine skews every figure: wait for a lull."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    announced = False
    while busy > max_busy and time.monotonic() < deadline:
        if not announced:
            say(f"the machine is {busy:.0%} busy; waiting up to {timeout:.0f}s for it to drop below {max_busy:.0%}")
            announced = True
        busy = cpu_busy(5.0)
    return busy


# -- readiness: the same probes for both stacks -----------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """What a client of either stack talks to."""

    host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    postgres_db: str
    minio_port: int
    minio_user: str
    minio_password: str
    bucket: str
    mlflow_port: int
    pgadmin_port: int

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


def _postgres_ok(e: Endpoints) -> bool:
    import psycopg

    with psycopg.connect(
        host=e.host,
        port=e.postgres_port,
        user=e.postgres_user,
        password=e.postgres_password,
        dbname=e.postgres_db,
        connect_timeout=2,
    ) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=2).status_code == 200


def _bucket_ok(e: Endpoints) -> bool:
    from minio import Minio

    client = Minio(f"{e.host}:{e.minio_port}", access_key=e.minio_user, secret_key=e.minio_password, secure=False)
    return bool(client.bucket_exists(e.bucket))


def probes(e: Endpoints) -> dict[str, Callable[[], bool]]:
    return {
        "postgres": lambda: _postgres_ok(e),
        "minio": lambda: _http_ok(f"http://{e.host}:{e.minio_port}/minio/health/live"),
        "mlflow": lambda: _http_ok(f"{e.mlflow_url}/health"),
        "pgadmin": lambda: _http_ok(f"http://{e.host}:{e.pgadmin_port}/misc/ping"),
        "bucket": lambda: _bucket_ok(e),
    }


def wait_ready(e: Endpoints, started: float, timeout: float = READY_TIMEOUT) -> dict[str, float]:
    """Poll until every probe has answered; return seconds since `started` per probe and in all."""
    pending = probes(e)
    first: dict[str, float] = {}
    while pending:
        for name, probe in list(pending.items()):
            try:
                ok = probe()
            except Exception:  # anything short of an answer means "not yet"
                ok = False
            if ok:
                first[name] = time.monotonic() - started
                del pending[name]
        if pending:
            if time.monotonic() - started > timeout:
                raise BenchError(f"not ready after {timeout:.0f}s: {', '.join(pending)} did not answer")
            time.sleep(POLL)
    first["all"] = time.monotonic() - started
    return first


# -- the two stacks ------------------------------------------------------------------------


class Trackstack:
    """trackstack in this checkout, as project `tsbench` with its own env file."""

    def __init__(self, env_file: Path) -> None:
        self.env_file = env_file
        self.settings: Settings = load_settings(env_file)
        if self.settings.compose_project_name != PROJECT:
            raise BenchError(f"{env_file} names project {self.settings.compose_project_name!r}, not {PROJECT!r}")
        self.project = Project(root=ROOT, env_file=env_file, settings=self.settings)
        self.env = docker_env() | {"TRACKSTACK_ENV_FILE": str(env_file)}
        s = self.settings
        self.endpoints = Endpoints(
            host=s.host,
            postgres_port=s.ports["POSTGRES_PORT"],
            postgres_user=s.postgres_user,
            postgres_password=s.postgres_password.get_secret_value(),
            postgres_db=s.postgres_db,
            minio_port=s.ports["MINIO_API_PORT"],
            minio_user=s.minio_root_user,
            minio_password=s.minio_root_password.get_secret_value(),
            bucket=s.mlflow_bucket,
            mlflow_port=s.ports["MLFLOW_PORT"],
            pgadmin_port=s.ports["PGADMIN_PORT"],
        )

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([*invoke_command(), *args], env=self.env, cwd=ROOT)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(compose_args(self.project, *args), env=docker_env(), check=check)

    def prepare(self) -> None:
        """Render and build the MLflow image now, so that no timed run builds."""
        self.invoke("build")

    def down(self, *, volumes: bool) -> None:
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []))

    def invoke_up(self) -> dict[str, float]:
        """`invoke up`; seconds until it reported the stack healthy, and until it finished seeding."""
        started = time.monotonic()
        marks: dict[str, float] = {}
        with subprocess.Popen(
            [*invoke_command(), "up"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            lines = []
            for line in process.stdout or []:
                lines.append(line)
                if "postgres, minio, mlflow, pgadmin healthy after" in line:
                    marks["stack_healthy"] = time.monotonic() - started
        if process.returncode != 0:
            raise BenchError("`invoke up` failed:\n" + "".join(lines[-25:]))
        marks["seeded"] = time.monotonic() - started
        return marks

    def compose_up_wait(self) -> float:
        return timed(lambda: self.compose("up", "--detach", "--wait"))

    def image_size(self) -> int:
        return image_size(self.settings.mlflow_image)


def make_env_file(path: Path) -> None:
    """`invoke init` into `path`, renamed to the bench project (strong random secrets)."""
    env = docker_env() | {"TRACKSTACK_ENV_FILE": str(path)}
    run([*invoke_command(), "init"], env=env, cwd=ROOT)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(
        "".join(f"COMPOSE_PROJECT_NAME={PROJECT}\n" if ln.startswith("COMPOSE_PROJECT_NAME=") else ln for ln in lines),
        encoding="utf-8",
    )
    say(f"wrote {path} (project {PROJECT})")


class Baseline:
    """The course's compose folder, copied to a temporary directory, on trackstack's images."""

    def __init__(self, source: Path, workdir: Path, ts: Trackstack) -> None:
        self.dir = workdir / "course"
        shutil.copytree(source, self.dir)
        for path in [self.dir, *self.dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        s = ts.settings
        values = dotenv(self.dir / ".env.example")
        values |= {
            "BASE_POSTGRES_IMAGE": s.postgres_image,
            "BASE_PGADMIN_IMAGE": s.pgadmin_image,
            "BASE_MINIO_IMAGE": s.minio_image,
            # The MinIO release image ships mc; the baseline overrides the entrypoint anyway.
            "BASE_MC_IMAGE": s.minio_image,
            # Its own Dockerfile resolves today's PyPI, which breaks MLflow 3.8.1 (SQLAlchemy 2.1):
            # run trackstack's image of the same MLflow release instead.
            "BASE_MLFLOW_IMAGE": s.mlflow_image,
        }
        (self.dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        # The verbatim minio-setup runs `mc mb` without --ignore-existing, so the baseline cannot
        # start again on its own data; the warm runs use this one-flag fix of it.
        original = (self.dir / "compose.yaml").read_text(encoding="utf-8")
        patched = original.replace("mc mb minioserver/mlflow;", "mc mb --ignore-existing minioserver/mlflow;")
        if patched == original:
            raise BenchError("the baseline's `mc mb` line changed; update the warm-start patch in bench/run.py")
        (self.dir / "compose.restartable.yaml").write_text(patched, encoding="utf-8")
        self.endpoints = Endpoints(
            host="127.0.0.1",
            postgres_port=5432,
            postgres_user=values["POSTGRES_USER"],
            postgres_password=values["POSTGRES_PASSWORD"],
            postgres_db="mlflow",  # what MLflow uses (init.sql creates it)
            minio_port=9000,
            minio_user=values["MINIO_ACCESS_KEY"],
            minio_password=values["MINIO_SECRET_ACCESS_KEY"],
            bucket="mlflow",
            mlflow_port=5001,
            pgadmin_port=5051,
        )
        self.mlflow_image = s.mlflow_image

    def compose(self, *args: str, file: str = "compose.yaml", check: bool = True) -> subprocess.CompletedProcess[str]:
        base = ["docker", "compose", "--project-directory", str(self.dir), "-f", str(self.dir / file)]
        base += ["-p", BASELINE_PROJECT, "--env-file", str(self.dir / ".env")]
        return run([*base, *args], env=docker_env(), check=check)

    def up(self, *, restartable: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
        # --no-build: the MLflow image is trackstack's; never let Compose build and retag it.
        file = "compose.restartable.yaml" if restartable else "compose.yaml"
        return self.compose("up", "--detach", "--no-build", file=file, check=check)

    def down(self, *, data: bool) -> None:
        self.compose("down", "--remove-orphans", check=False)
        if data:
            for name in ("postgres_data", "minio_data"):
                empty_dir(self.dir / name)


def empty_dir(path: Path) -> None:
    """Delete a bind-mounted data folder; its files belong to container users (root can)."""
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        run(["docker", "run", "--rm", "--user", "0", "-v", f"{path.parent}:/parent", "--entrypoint", "rm",
             "postgres:17-trixie", "-rf", f"/parent/{path.name}"])  # fmt: skip


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def invoke_command() -> list[str]:
    """The `invoke` launcher of the interpreter running the bench (the venv's or nox's)."""
    script = Path(sys.executable).with_name("invoke")
    return [str(script)] if script.exists() else [sys.executable, "-m", "invoke"]


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip())


def build_baseline_image(source: Path, base_image: str, tag: str, workdir: Path, no_cache: bool) -> int:
    """Build the baseline's own Dockerfile with its FROM line set to trackstack's base image."""
    context = workdir / "baseline-image"
    shutil.copytree(source / "mlflow", context)
    dockerfile = context / "Dockerfile"
    dockerfile.chmod(0o644)
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    lines = [f"FROM {base_image}" if line.startswith("FROM ") else line for line in lines]
    dockerfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["docker", "build", "--quiet", "-t", tag, *(["--no-cache"] if no_cache else []), str(context)]
    run(args, env=docker_env() | {"DOCKER_BUILDKIT": "1"})
    return image_size(tag)


# -- throughput ----------------------------------------------------------------------------


def _client(url: str, experiment_id: str, batches: int, go: Event, out: Any) -> None:
    """One tracking client: a run of its own, one warm-up batch, then `batches` timed batches."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)

    def batch(index: int) -> list[Metric]:
        return [Metric(f"m{j % 10}", float(j), now + index, index * 100 + j // 10) for j in range(METRICS_PER_BATCH)]

    client.log_batch(run_id, metrics=batch(0))
    prepared = [batch(i + 1) for i in range(batches)]
    out.put(("ready", 0.0, 0.0))
    go.wait()
    started = time.monotonic()
    for metrics in prepared:
        client.log_batch(run_id, metrics=metrics)
    out.put(("done", started, time.monotonic()))


def throughput(url: str, clients: int, batches: int) -> float:
    """Metrics per second that `clients` processes log together through the tracking server."""
    from mlflow.tracking import MlflowClient

    experiment_id = MlflowClient(tracking_uri=url).create_experiment(f"bench-{time.time_ns()}")
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out = context.Queue()
    workers = [context.Process(target=_client, args=(url, experiment_id, batches, go, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(clients):
            kind, _, _ = out.get(timeout=120)
            if kind != "ready":
                raise BenchError("a throughput client failed to start")
        go.set()
        spans: list[tuple[float, float]] = [out.get(timeout=600)[1:] for _ in range(clients)]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    if any(worker.exitcode for worker in workers):
        raise BenchError("a throughput client exited with an error")
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return clients * batches * METRICS_PER_BATCH / elapsed


# -- results -------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    title: str
    unit: str
    ours: str
    theirs: str
    target: float | None = None  # the ratio ours/theirs must stay at or below (or above, when higher wins)
    higher_is_better: bool = False
    samples: list[float] = field(default_factory=list)
    compared: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ours, theirs = stats(self.samples), stats(self.compared)
        ratio = ours["median"] / theirs["median"] if ours and theirs and theirs["median"] else None
        met = None
        if ratio is not None and self.target is not None:
            met = ratio >= self.target if self.higher_is_better else ratio <= self.target
        return {
            "title": self.title,
            "unit": self.unit,
            "trackstack": {"what": self.ours, **ours, "samples": self.samples},
            "comparison": {"what": self.theirs, **theirs, "samples": self.compared} if self.theirs else None,
            "ratio": ratio,
            "target": (f">= {self.target}" if self.higher_is_better else f"<= {self.target}") if self.target else None,
            "met": met,
            "failures": self.failures,
        }


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def rows() -> dict[str, Row]:
    table = [
        Row("ready_cold", "time to ready, cold (s)", "s", "invoke up", "baseline: compose up -d, then poll", 0.8),
        Row("ready_warm", "time to ready, warm (s)", "s", "invoke up", "baseline: compose up -d, then poll", 0.6),
        Row("overhead_cold", "orchestration, cold (s)", "s", "invoke up", "docker compose up -d --wait", 1.1),
        Row("overhead_warm", "orchestration, warm (s)", "s", "invoke up", "docker compose up -d --wait", 1.1),
        Row("list", "task start-up (s)", "s", "invoke --list", "invoke --list, empty collection", 1.5),
        Row("image", "MLflow image (MB)", "MB", "trackstack image", "baseline Dockerfile, same base", 0.7),
        Row("tput1", "throughput, 1 client (metrics/s)", "1/s", "trackstack", "baseline", 1.0, True),
        Row("tput4", "throughput, 4 clients (metrics/s)", "1/s", "trackstack", "baseline", 1.5, True),
        Row("smoke", "smoke suite wall time (s)", "s", "pytest tests/live", ""),
    ]
    return {row.key: row for row in table}


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def cell(summary: dict[str, Any] | None) -> str:
    if not summary or "median" not in summary:
        return "-"
    return f"{fmt(summary['median'])} [{fmt(summary['min'])}-{fmt(summary['max'])}]"


def render_table(summaries: dict[str, dict[str, Any]]) -> str:
    header = ("row", "trackstack median [min-max]", "comparison median [min-max]", "ratio", "target", "met")
    lines = [header]
    for item in summaries.values():
        ratio = f"{item['ratio']:.2f}x" if item["ratio"] is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[item["met"]]
        lines.append(
            (item["title"], cell(item["trackstack"]), cell(item["comparison"]), ratio, item["target"] or "-", met)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def machine() -> dict[str, Any]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    mem = next(
        (ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0"
    )
    versions = run(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"], check=False)
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "docker_engine": versions.stdout.strip(),
        "compose": run(["docker", "compose", "version", "--short"], check=False).stdout.strip(),
        "python": platform.python_version(),
    }


def uptime() -> str:
    return run(["uptime"], check=False).stdout.strip()


def git_revision() -> dict[str, Any]:
    head = run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=False).stdout.strip()
    dirty = bool(run(["git", "status", "--porcelain", "--", "src", "templates", ".env.example"], cwd=ROOT).stdout)
    return {"commit": head, "dirty": dirty}


# -- the benchmark -------------------------------------------------------------------------


@contextmanager
def cleanup(ts: Trackstack, baseline: Baseline | None) -> Iterator[None]:
    try:
        yield
    finally:
        say("cleaning up: both stacks down, their volumes and data removed")
        ts.down(volumes=True)
        if baseline is not None:
            baseline.down(data=True)


def timed_start(
    what: str, start: Callable[[], object], endpoints: Endpoints, args: argparse.Namespace, log: dict[str, Any]
) -> dict[str, float]:
    """Run a start command, then poll: seconds until the command returned and each probe answered."""
    busy = wait_for_quiet(args.max_busy)
    load = os.getloadavg()[0]
    started = time.monotonic()
    marks = start()
    command = time.monotonic() - started
    ready = wait_ready(endpoints, started)
    detail = {"command": command, **(marks if isinstance(marks, dict) else {}), **ready}
    log["runs"].append({"what": what, "load1": round(load, 2), "busy": round(busy, 2), "seconds": detail})
    say(f"{what}: ready in {ready['all']:.1f}s {compact(detail)}")
    return detail


def timed_command(what: str, command: Callable[[], object], args: argparse.Namespace, log: dict[str, Any]) -> float:
    busy = wait_for_quiet(args.max_busy)
    load = os.getloadavg()[0]
    seconds = timed(command)
    log["runs"].append({"what": what, "load1": round(load, 2), "busy": round(busy, 2), "seconds": seconds})
    say(f"{what}: {seconds:.1f}s")
    return seconds


def measure_throughput(what: str, url: str, clients: int, args: argparse.Namespace, log: dict[str, Any]) -> float:
    busy = wait_for_quiet(args.max_busy)
    load = os.getloadavg()[0]
    rate = throughput(url, clients, args.batches)
    log["runs"].append({"what": what, "load1": round(load, 2), "busy": round(busy, 2), "metrics_per_s": rate})
    say(f"{what}: {rate:,.0f} metrics/s")
    return rate


def list_times(rounds: int, workdir: Path) -> tuple[list[float], list[float]]:
    empty = workdir / "empty-collection"
    empty.mkdir(exist_ok=True)
    (empty / "tasks.py").write_text("from invoke import Collection\n\nns = Collection()\n", encoding="utf-8")
    ours, theirs = [], []
    env = docker_env()
    for _ in range(rounds):
        ours.append(timed(lambda: run([*invoke_command(), "--list"], env=env, cwd=ROOT)))
        # An empty collection makes `invoke --list` exit 1 ("No tasks found"): only the time counts.
        theirs.append(timed(lambda: run([*invoke_command(), "--list"], env=env, cwd=empty, check=False)))
    return ours, theirs


def bench_trackstack(ts: Trackstack, table: dict[str, Row], args: argparse.Namespace, log: dict[str, Any]) -> None:
    wait_for_free_ports()
    ts.down(volumes=True)
    detail = timed_start("trackstack cold", ts.invoke_up, ts.endpoints, args, log)
    table["ready_cold"].samples.append(detail["all"])
    table["overhead_cold"].samples.append(detail["command"])

    url = ts.endpoints.mlflow_url
    table["tput1"].samples.append(measure_throughput("trackstack, 1 client", url, 1, args, log))
    table["tput4"].samples.append(measure_throughput("trackstack, 4 clients", url, 4, args, log))

    smoke_env = docker_env() | {"TRACKSTACK_ENV_FILE": str(ts.env_file)}
    smoke_args = [sys.executable, "-m", "pytest", "tests/live", "-m", "live", "-p", "no:cacheprovider", "-q"]
    wait_for_quiet(args.max_busy)
    started = time.monotonic()
    result = run(smoke_args, env=smoke_env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    if result.returncode == 0:
        table["smoke"].samples.append(elapsed)
    else:
        table["smoke"].failures.append(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "failed")
    say(f"smoke suite: {elapsed:.1f}s ({'passed' if result.returncode == 0 else 'FAILED'})")

    ts.down(volumes=False)
    detail = timed_start("trackstack warm", ts.invoke_up, ts.endpoints, args, log)
    table["ready_warm"].samples.append(detail["all"])
    table["overhead_warm"].samples.append(detail["command"])

    # Orchestration overhead: the same two states, plain Compose on trackstack's rendered files.
    ts.down(volumes=False)
    table["overhead_warm"].compared.append(timed_command("compose up --wait, warm", ts.compose_up_wait, args, log))
    ts.down(volumes=True)
    table["overhead_cold"].compared.append(timed_command("compose up --wait, cold", ts.compose_up_wait, args, log))
    ts.down(volumes=True)


def bench_baseline(
    baseline: Baseline, table: dict[str, Row], args: argparse.Namespace, log: dict[str, Any], *, first: bool
) -> None:
    wait_for_free_ports()
    baseline.down(data=True)
    detail = timed_start("baseline cold", baseline.up, baseline.endpoints, args, log)
    table["ready_cold"].compared.append(detail["all"])

    url = baseline.endpoints.mlflow_url
    table["tput1"].compared.append(measure_throughput("baseline, 1 client", url, 1, args, log))
    table["tput4"].compared.append(measure_throughput("baseline, 4 clients", url, 4, args, log))

    if first:
        # Once per invocation: does the verbatim baseline start again on its own data?
        baseline.down(data=False)
        started = time.monotonic()
        result = baseline.up(check=False)
        outcome = {
            "exit_code": result.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "message": (result.stderr.strip().splitlines() or [""])[-1],
        }
        log["baseline_verbatim_warm_start"] = outcome
        say(f"verbatim baseline, warm start: exit {outcome['exit_code']}: {outcome['message']}")

    baseline.down(data=False)
    detail = timed_start(
        "baseline warm (mc mb --ignore-existing)", lambda: baseline.up(restartable=True), baseline.endpoints, args, log
    )
    table["ready_warm"].compared.append(detail["all"])
    baseline.down(data=True)


def invoke_up_phases(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Medians of when `invoke up` reported the stack healthy, and how long seeding took after that."""
    phases = {}
    for state in ("cold", "warm"):
        marks = [r["seconds"] for r in runs if r["what"] == f"trackstack {state}" and "stack_healthy" in r["seconds"]]
        if marks:
            phases[state] = {
                "stack_healthy": statistics.median(m["stack_healthy"] for m in marks),
                "seeding": statistics.median(m["seeded"] - m["stack_healthy"] for m in marks),
            }
    return phases


def compact(detail: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k} {v:.1f}" for k, v in detail.items() if k != "all") + ")"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every stack measurement (default 3)")
    parser.add_argument("--batches", type=int, default=20, help="log_batch calls of 1000 metrics per client")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env.bench", help="trackstack's env file")
    parser.add_argument("--baseline", type=Path, default=BASELINE_SOURCE, help="the course's compose folder")
    parser.add_argument("--no-cache", action="store_true", help="build the baseline image without the layer cache")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.35,
        help="before each timed step, wait up to 5 min for the CPU to be less busy than this (default 0.35; 1: never)",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args(argv)

    stamp = dt.datetime.now(dt.UTC)
    env_file = args.env_file.resolve()
    if not env_file.exists():
        make_env_file(env_file)
    ts = Trackstack(env_file)
    log: dict[str, Any] = {"runs": [], "failures": []}
    table = rows()
    load_before = uptime()
    say(f"load before: {load_before}")

    with tempfile.TemporaryDirectory(prefix="trackstack-bench-") as tmp:
        workdir = Path(tmp)
        say("building trackstack's MLflow image if needed (not timed)")
        ts.prepare()
        baseline = Baseline(args.baseline, workdir, ts)
        with cleanup(ts, baseline):
            say("building the baseline's Dockerfile on trackstack's base image (image size)")
            base_tag = f"{BASELINE_PROJECT}-mlflow:size-bench"
            theirs = build_baseline_image(
                args.baseline, ts.settings.mlflow_base_image, base_tag, workdir, args.no_cache
            )
            table["image"].samples.append(ts.image_size() / 1e6)
            table["image"].compared.append(theirs / 1e6)

            ours, empty = list_times(5 * args.repeat, workdir)
            table["list"].samples += ours
            table["list"].compared += empty

            for index in range(args.repeat):
                say(f"round {index + 1} of {args.repeat}")
                # Alternate which stack goes first, so that drift does not favour either.
                blocks: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
                    ("trackstack", lambda: bench_trackstack(ts, table, args, log), lambda: ts.down(volumes=True)),
                    (
                        "baseline",
                        lambda: bench_baseline(
                            baseline, table, args, log, first="baseline_verbatim_warm_start" not in log
                        ),
                        lambda: baseline.down(data=True),
                    ),
                ]
                for name, block, tidy in blocks if index % 2 == 0 else reversed(blocks):
                    try:
                        block()
                    except BenchError as error:  # e.g. the shared engine restarted: skip this round of it
                        say(f"round {index + 1}, {name} failed: {error}")
                        log["failures"].append({"round": index + 1, "stack": name, "error": str(error)})
                        tidy()

    summaries = {key: row.summary() for key, row in table.items()}
    phases = invoke_up_phases(log["runs"])
    report = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {"before": load_before, "after": uptime()},
        "trackstack": {
            **git_revision(),
            "env_file": str(env_file),
            "project": PROJECT,
            "mlflow_image": ts.settings.mlflow_image,
            "mlflow_workers": ts.settings.mlflow_workers,
        },
        "repeat": args.repeat,
        "batches_per_client": args.batches,
        "notes": [
            f"Baseline MLflow image: trackstack's {ts.settings.mlflow_image} (BASE_MLFLOW_IMAGE); the baseline's "
            "own Dockerfile resolves today's PyPI, whose SQLAlchemy 2.1 breaks MLflow 3.8.1 at start-up. Same "
            "server code: the running rows compare orchestration and server settings.",
            "Image row: the baseline's Dockerfile really built, FROM rewritten to trackstack's MLFLOW_BASE_IMAGE.",
            "Warm baseline: the verbatim minio-setup (`mc mb` without --ignore-existing) fails on existing data "
            "(see baseline_verbatim_warm_start); warm runs add --ignore-existing and change nothing else.",
            "Cold = images present, volumes/bind mounts empty; warm = containers removed by `down`, data kept. "
            "Ready = Postgres SELECT 1, MinIO /minio/health/live, MLflow /health, pgAdmin /misc/ping and the bucket.",
        ],
        "rows": summaries,
        "invoke_up_phases": phases,
        **log,
    }
    print()
    print(f"trackstack vs the course's stack, {report['date']} on {report['machine']['hostname']} "
          f"({report['machine']['cores']} cores, {report['machine']['cpu']})")  # fmt: skip
    print(render_table(summaries))
    for state, phase in phases.items():
        print(
            f"  invoke up, {state}: stack healthy after {phase['stack_healthy']:.1f}s, "
            f"then seeding (bucket, pgAdmin server) {phase['seeding']:.1f}s (medians)"
        )
    for note in report["notes"]:
        print(f"  * {note}")
    output = args.output or RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say(f"saved {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
