"""Real MLflow clients, each `pip install mlflow==VERSION` in a virtualenv of its own, as a student has.

The live suites run `tests/client_script.py` in them against a deployed stack: no variable of
the test process reaches the client but the tracking URI, the login and the CA a student is
told to set. The virtualenvs are kept in a cache folder between runs (uv fills them in seconds
from its cache; pip when uv is missing).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import progress

SCRIPT = Path(__file__).with_name("client_script.py")
CACHE = Path(os.environ.get("TRACKSTACK_TEST_CLIENTS", "/var/cache/trackstack-testbed/mlflow-clients"))
# The course's client (its requirements.txt), the server trackstack pins, and the newest on PyPI.
COURSE_CLIENT = "3.8.1"
# Client settings that would hide what a student meets (artifact transfers going around the
# server): no suite may set them (test_clients.py checks the test process's environment).
HIDING_VARIABLES = ("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD")
# 1 KiB, the 256 KiB of the report that found the hang, 10 MiB, and one past the client's multipart
# threshold (MLflow's MLFLOW_MULTIPART_UPLOAD/DOWNLOAD_MINIMUM_FILE_SIZE: 500 MiB).
SMALL_SIZES = [1 << 10, 256 << 10, 10 << 20]
PAST_MULTIPART = (500 << 20) + (1 << 20)
# What a student sets: where the server is, a login, the server's CA. Plus what a shell has.
PASSED = ("PATH", "HOME", "LANG", "TMPDIR")


def newest_mlflow() -> str:
    """The newest MLflow release that PyPI serves today (what `pip install mlflow` gives)."""
    found = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "mlflow", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return found.split("(", 1)[1].split(")", 1)[0]


def client_python(version: str) -> Path:
    """The interpreter of a virtualenv holding `mlflow==version` (and so scikit-learn), made once."""
    if sys.platform == "win32":  # the test beds run on Linux hosts (fcntl)
        raise RuntimeError("the MLflow client matrix needs fcntl (Linux)")
    venv = CACHE / f"mlflow-{version}"
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("a") as lock:  # two suites may ask for one client at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "ready").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        progress(f"[clients] installing mlflow=={version} in {venv}")
        uv = shutil.which("uv")
        if uv:
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
            install = [uv, "pip", "install", "--quiet", "--python", str(python)]
        else:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, f"mlflow=={version}"], check=True, timeout=900)
        (venv / "ready").touch()
    return python


@dataclass(frozen=True)
class ClientRun:
    client: str
    uploads: dict[str, float]  # seconds per artifact
    downloads: dict[str, float]
    model: dict[str, str]


def run_client(
    version: str,
    tracking_uri: str,
    sizes: list[int],
    *,
    login: tuple[str, str] | None = None,
    ca: str | None = None,
    model: bool = True,
    download_limit: int = 60,
    timeout: float = 900,
) -> ClientRun:
    """Log, download and load as a student would with MLflow `version`; fails with the client's own words."""
    environment = {name: os.environ[name] for name in PASSED if name in os.environ}
    environment["MLFLOW_TRACKING_URI"] = tracking_uri
    if login:
        environment["MLFLOW_TRACKING_USERNAME"], environment["MLFLOW_TRACKING_PASSWORD"] = login
    if ca:
        environment["MLFLOW_TRACKING_SERVER_CERT_PATH"] = ca
    command = [
        str(client_python(version)),
        "-I",
        str(SCRIPT),
        *map(str, sizes),
        "--download-limit",
        str(download_limit),
    ]
    done = subprocess.run(
        [*command, *(["--model"] if model else [])],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"mlflow {version} client failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    progress(f"[clients] mlflow {report['client']}: uploads {report['uploads']} s, downloads {report['downloads']} s")
    return ClientRun(report["client"], report["uploads"], report["downloads"], report.get("model", {}))
