"""The named layer that runs Docker: every command is an argument list built here."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import KEYS

# Engine API 1.44 (Docker 25) added healthcheck start_interval.
START_INTERVAL_API = (1, 44)


class DockerError(TrackstackError):
    """Docker is missing, unreachable, too old, or a command failed."""


@dataclass(frozen=True)
class EngineFeatures:
    """What the Docker engine in use supports, where the compose file depends on it."""

    # Healthcheck `start_interval` needs Engine 25+ (API 1.44); older engines reject it.
    start_interval: bool = True


@dataclass(frozen=True)
class ServiceState:
    """One container of the stack as `docker compose ps` reports it."""

    service: str
    container: str
    state: str  # running, exited, restarting, created, paused, dead
    health: str  # healthy, starting, unhealthy, or "" without a healthcheck
    exit_code: int
    config_hash: str = ""  # Compose's hash of the service's configuration when it was created
    image_id: str = ""  # the image the container was created from

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in ("healthy", "")

    @property
    def broken(self) -> bool:
        """Failed, or crash-looping under the restart policy."""
        return self.health == "unhealthy" or self.state in ("exited", "dead", "restarting")


def docker_env() -> dict[str, str]:
    """The environment for docker commands: `.env` keys must come from `.env`, not the shell.

    Compose lets an exported shell variable override `.env`; trackstack validated `.env`,
    so that is what the containers get.
    """
    return {key: value for key, value in os.environ.items() if key not in KEYS}


def run(
    args: Sequence[str],
    *,
    capture: bool = False,
    check: bool = True,
    input_text: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command list; on failure raise `DockerError` with its error output."""
    try:
        result = subprocess.run(
            list(args),
            capture_output=capture,
            text=True,
            input=input_text,
            check=False,
            env=docker_env(),
            cwd=cwd,
        )
    except FileNotFoundError:
        raise DockerError(
            f"{args[0]} is not installed or not on PATH. Fix: install Docker Engine "
            "(https://docs.docker.com/engine/install/) or Docker Desktop, then retry."
        ) from None
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip() if capture else ""
        raise DockerError(failure(args, result.returncode, detail))
    return result


# What a failing docker command's error output means, and its fix (first match wins).
_FIXES = (
    ("Cannot connect to the Docker daemon", "start Docker (`invoke doctor` checks it), then retry"),
    ("is not running", "run `invoke up` to start the stack, then retry"),
    ("No such container", "run `invoke up` to start the stack, then retry"),
)


def failure(args: Sequence[str], code: int, detail: str) -> str:
    """One line naming the command that failed and the fix; what it said follows, indented."""
    fix = next((fix for marker, fix in _FIXES if marker in detail), None)
    fix = fix or "`invoke status` shows which service is down, `invoke logs --service NAME` why"
    said = "".join(f"\n    {line}" for line in detail.splitlines())
    return f"`{describe(args)}` failed (exit {code}). Fix: {fix}.{said}"


def describe(args: Sequence[str]) -> str:
    """A command as an error message names it: the subcommand, not the options every call repeats."""
    words = list(args)
    if words[:2] == ["docker", "compose"]:
        shown = ["docker", "compose"]
        rest = words[2:]
        while rest and rest[0] in ("--project-directory", "-f", "-p", "--env-file"):
            rest = rest[2:]
        words = shown + rest
    text = " ".join(words[:6])
    return text + (" ..." if len(words) > 6 else "")


def compose_args(project: Project, *args: str) -> list[str]:
    """`docker compose` with the project, its file and its `.env` always spelt out."""
    return [
        "docker",
        "compose",
        "--project-directory",
        str(project.root),
        "-f",
        str(project.compose_file),
        "-p",
        project.name,
        "--env-file",
        str(project.env_file),
        *args,
    ]


def compose(
    project: Project, *args: str, capture: bool = False, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(compose_args(project, *args), capture=capture, check=check, input_text=input_text)


def compose_stream(
    project: Project, *args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None
) -> None:
    """Run `docker compose ARGS` with binary data on stdin or stdout (dumps, archives)."""
    stream(compose_args(project, *args), stdin=stdin, stdout=stdout)


def stream(args: Sequence[str], *, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """Run a docker command with binary data on stdin or stdout (dumps, objects through `docker exec`)."""
    try:
        result = subprocess.run(list(args), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=docker_env(),
                                check=False)  # fmt: skip
    except FileNotFoundError:
        raise DockerError(f"{args[0]} is not installed or not on PATH. Fix: install Docker, then retry.") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise DockerError(failure(args, result.returncode, detail))


@dataclass(frozen=True)
class DockerProbe:
    """What this machine's Docker can do, as far as trackstack cares."""

    cli: bool
    server_api: tuple[int, int] | None = None
    server_version: str = ""
    server_error: str = ""
    compose_version: str | None = None  # Compose v2 plugin, None when absent
    compose_v1: bool = False  # the old stand-alone docker-compose


def probe_docker() -> DockerProbe:
    compose_v1 = shutil.which("docker-compose") is not None
    if shutil.which("docker") is None:
        return DockerProbe(cli=False, compose_v1=compose_v1)
    # Independent questions, each a CLI start and a round trip: ask both at once.
    with ThreadPoolExecutor(max_workers=2) as pool:
        asked = pool.submit(run, ["docker", "version", "--format", "{{json .}}"], capture=True, check=False)
        compose_version = run(["docker", "compose", "version", "--short"], capture=True, check=False)
        version = asked.result()
    server_version = ""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        server_version = str(json.loads(version.stdout)["Server"]["Version"])
    return DockerProbe(
        cli=True,
        server_api=_server_api(version.stdout),
        server_version=server_version,
        server_error=_first_line(version.stderr),
        compose_version=compose_version.stdout.strip() if compose_version.returncode == 0 else None,
        compose_v1=compose_v1,
    )


def docker_problem(probe: DockerProbe) -> str | None:
    """The blocking problem with this Docker, phrased with its fix; None when usable."""
    if not probe.cli:
        hint = " (only the old docker-compose v1 is here, which trackstack does not use)" if probe.compose_v1 else ""
        return (
            "Docker is not installed" + hint + ". Fix: install Docker Engine with the Compose v2 plugin "
            "(https://docs.docker.com/engine/install/) or Docker Desktop."
        )
    if probe.server_api is None:
        return (
            "The Docker daemon is not reachable. Fix: start Docker (Docker Desktop, or "
            "`sudo systemctl start docker`) and make sure your user may use it (`docker info` must work)."
            + (f"\n  docker said: {probe.server_error}" if probe.server_error else "")
        )
    if probe.compose_version is None:
        v1 = " Only the old docker-compose v1 was found, which trackstack does not use." if probe.compose_v1 else ""
        return (
            "Docker Compose v2 (`docker compose`) is missing." + v1 + " Fix: install the Compose plugin "
            "(package docker-compose-plugin, or Docker Desktop)."
        )
    return None


def check_docker() -> EngineFeatures:
    """Docker installed, daemon reachable, Compose v2 present; report what the engine supports."""
    probe = probe_docker()
    problem = docker_problem(probe)
    if problem or probe.server_api is None:
        raise DockerError(problem or "The Docker daemon is not reachable.")
    return EngineFeatures(start_interval=probe.server_api >= START_INTERVAL_API)


def _server_api(version_json: str) -> tuple[int, int] | None:
    try:
        info = json.loads(version_json)
        text = str(info["Server"]["ApiVersion"])
    except (ValueError, KeyError, TypeError):
        return None
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def parse_ps(output: str) -> list[ServiceState]:
    """Read `docker compose ps --format json`: a JSON list (old Compose) or one object per line."""
    text = output.strip()
    if not text:
        return []
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    states = []
    for row in rows:
        labels = _labels(row.get("Labels", ""))
        states.append(
            ServiceState(
                service=row["Service"],
                container=row["Name"],
                state=row.get("State", ""),
                health=row.get("Health", "") or "",
                exit_code=int(row.get("ExitCode", 0) or 0),
                config_hash=labels.get("com.docker.compose.config-hash", ""),
                image_id=labels.get("com.docker.compose.image", ""),
            )
        )
    return states


def _labels(text: str | dict[str, str]) -> dict[str, str]:
    """`docker compose ps` gives labels as one "key=value,key=value" string (values have no commas)."""
    if isinstance(text, dict):
        return text
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {key: value for key, _, value in pairs}


def config_hashes(project: Project) -> dict[str, str]:
    """The hash Compose would give each service's configuration now, from the compose file and `.env`."""
    result = compose(project, "config", "--hash", "*", capture=True)
    return dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.strip())


def ps(project: Project) -> list[ServiceState]:
    result = compose(project, "ps", "--all", "--format", "json", capture=True)
    return parse_ps(result.stdout)


def running_services(project: Project) -> set[str]:
    """Services of this project with a running container (no compose file needed)."""
    result = run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={project.name}",
            "--format",
            '{{ .Label "com.docker.compose.service" }}',
        ],
        capture=True,
    )
    return set(result.stdout.split())


def image_label(image: str, label: str) -> str | None:
    """A label of a local image, or None when the image is absent."""
    result = run(
        ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', image],
        capture=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip()


def image_layers(image: str) -> list[str] | None:
    """The layer digests of a local image, base first; None when the image is absent."""
    result = run(
        ["docker", "image", "inspect", "--format", "{{ json .RootFS.Layers }}", image], capture=True, check=False
    )
    if result.returncode != 0:
        return None
    layers: list[str] = json.loads(result.stdout)
    return layers


def image_id(image: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", "{{ .Id }}", image], capture=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def logs_tail(project: Project, service: str, lines: int = 30) -> str:
    result = compose(
        project, "logs", "--no-color", "--no-log-prefix", "--tail", str(lines), service, capture=True, check=False
    )
    return _ANSI.sub("", result.stdout.strip() or result.stderr.strip())


def volumes(project: Project) -> list[str]:
    """The stack's named volumes that exist on the engine."""
    result = run(
        [
            "docker",
            "volume",
            "ls",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={project.name}",
        ],
        capture=True,
    )
    return sorted(result.stdout.split())


def volume_sizes(project: Project) -> dict[str, str]:
    """Disk used by each of the stack's volumes, as Docker reports it (e.g. "48.2MB")."""
    result = run(["docker", "system", "df", "--verbose", "--format", "{{json .Volumes}}"], capture=True, check=False)
    try:
        rows = json.loads(result.stdout or "[]") or []
    except ValueError:
        return {}
    prefix = f"{project.name}_"
    return {row["Name"]: row.get("Size", "") for row in rows if str(row.get("Name", "")).startswith(prefix)}
