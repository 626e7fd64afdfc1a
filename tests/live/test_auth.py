"""MLflow with logins and LAN host names (the `auth_stack` fixture switches the live stack over and back)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import PUBLIC_HOST, ROOT, AuthStack, Target
from trackstack.paths import ENV_FILE_VARIABLE

SEARCH = "/api/2.0/mlflow/experiments/search"


def _ca(stack: AuthStack) -> str | bool:
    return stack.verify


def _get(stack: AuthStack, path: str, **kwargs: object) -> requests.Response:
    url = f"{stack.project.settings.mlflow_url}{path}"
    return requests.get(url, timeout=10, **({"verify": _ca(stack)} | kwargs))  # type: ignore[arg-type]


def test_lan_mode_is_https_with_a_name_constrained_ca(auth_stack: AuthStack) -> None:
    """Compose's LAN mode: MLflow's port speaks TLS only, with a certificate that verifies against
    trackstack's CA, and the CA may sign for the server's names only."""
    from cryptography import x509

    settings = auth_stack.project.settings
    if not settings.mlflow_behind_proxy:
        pytest.skip("the deployed stack's own TLS is tested by its suite")
    assert settings.mlflow_url.startswith("https://127.0.0.1:")
    ca = x509.load_pem_x509_certificate(Path(str(_ca(auth_stack))).read_bytes())
    assert ca.extensions.get_extension_for_class(x509.NameConstraints).critical
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{settings.mlflow_url}/health", timeout=10)  # not in the system's trust store
    plain = settings.mlflow_url.replace("https://", "http://")
    # No plain HTTP beyond loopback, nor on it: the proxy answers it with its own 400, never MLflow.
    answer = requests.get(f"{plain}/health", timeout=10)
    assert answer.status_code == 400
    assert "HTTPS" in answer.text
    assert _get(auth_stack, "/health").status_code == 200


def test_no_credentials_get_401(auth_stack: AuthStack) -> None:
    response = _get(auth_stack, SEARCH, params={"max_results": 1})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'


def test_a_wrong_password_gets_401(auth_stack: AuthStack) -> None:
    response = _get(auth_stack, SEARCH, params={"max_results": 1}, auth=(auth_stack.admin[0], "not-the-password"))
    assert response.status_code == 401


def test_health_needs_no_login(auth_stack: AuthStack) -> None:
    assert _get(auth_stack, "/health").status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (f"{PUBLIC_HOST}:{{port}}", 200),
        (PUBLIC_HOST, 200),
        ("localhost:{port}", 200),
        ("attacker.example:{port}", 403),
        (f"other.{PUBLIC_HOST}:{{port}}", 403),
    ],
)
def test_only_configured_host_names_are_answered(auth_stack: AuthStack, host: str, status: int) -> None:
    # Sent to 127.0.0.1 with the Host header a LAN client would send (over TLS: the certificate is 127.0.0.1's).
    header = host.format(port=auth_stack.project.settings.ports["MLFLOW_PORT"])
    response = _get(auth_stack, SEARCH, params={"max_results": 1}, auth=auth_stack.admin, headers={"Host": header})
    assert response.status_code == status, response.text[:200]


def _invoke(stack: AuthStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {ENV_FILE_VARIABLE: str(stack.project.env_file)}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def student(auth_stack: AuthStack) -> Iterator[tuple[str, str]]:
    """A login made with `invoke user.add`, removed with `invoke user.remove` at the end."""
    name = f"student-{uuid.uuid4().hex[:8]}"
    added = _invoke(auth_stack, "user.add", name)
    assert added.returncode == 0, added.stderr
    match = re.search(r"its password \(shown only now\): (\S+)", added.stdout)
    assert match, added.stdout
    yield name, match[1]
    removed = _invoke(auth_stack, "user.remove", name)
    assert removed.returncode == 0, removed.stderr
    assert name not in _invoke(auth_stack, "user.list").stdout


def test_user_list_shows_the_admin_and_the_student(auth_stack: AuthStack, student: tuple[str, str]) -> None:
    listed = _invoke(auth_stack, "user.list")
    assert listed.returncode == 0, listed.stderr
    assert f"{auth_stack.admin[0]}  (admin)" in listed.stdout.splitlines()
    assert student[0] in listed.stdout.splitlines()
    assert student[1] not in listed.stdout


def test_adding_an_existing_user_is_one_clear_error(auth_stack: AuthStack, student: tuple[str, str]) -> None:
    again = _invoke(auth_stack, "user.add", student[0])
    assert again.returncode == 1
    assert again.stderr.startswith(f"trackstack: error: MLflow already has a user {student[0]}. Fix:")


def test_metrics_are_the_admins_only(auth_stack: AuthStack, student: tuple[str, str]) -> None:
    """Prometheus's /metrics: the admin reads it, a student's login is refused (MLflow's fail-closed basic-auth,
    which trackstack turns on: no permission check is registered for /metrics), no login is asked for one."""
    assert _get(auth_stack, "/metrics").status_code == 401
    assert _get(auth_stack, "/metrics", auth=student).status_code == 403
    answer = _get(auth_stack, "/metrics", auth=auth_stack.admin)
    assert answer.status_code == 200
    assert "mlflow_http_request" in answer.text


@pytest.fixture(autouse=True)
def _trust_the_servers_ca(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a student does in LAN mode: give the MLflow client the CA file (MLFLOW_TRACKING_SERVER_CERT_PATH)."""
    if "auth_stack" in request.fixturenames:
        ca = _ca(request.getfixturevalue("auth_stack"))
        if isinstance(ca, str):
            monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", ca)


@contextmanager
def _as(login: tuple[str, str]) -> Iterator[None]:
    """The MLflow client reads its credentials from the environment on every request."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = login
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_student_logs_runs_and_artifacts_but_cannot_delete_others_experiments(
    auth_stack: AuthStack, student: tuple[str, str], tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=auth_stack.project.settings.mlflow_url)
    suffix = uuid.uuid4().hex[:8]
    with _as(auth_stack.admin):
        teachers = client.create_experiment(f"teacher-{suffix}")
    auth_stack.experiments.append(teachers)
    with _as(student):
        own = client.create_experiment(f"student-{suffix}")
        auth_stack.experiments.append(own)
        run_id = client.create_run(own).info.run_id
        client.log_metric(run_id, "loss", 0.5)
        artifact = tmp_path / "notes.txt"
        artifact.write_text("logged by a student")
        client.log_artifact(run_id, str(artifact))
        client.set_terminated(run_id)
        downloaded = client.download_artifacts(run_id, "notes.txt", str(tmp_path / "back"))
        assert Path(downloaded).read_text() == "logged by a student"
        assert client.get_experiment(teachers).name == f"teacher-{suffix}"  # READ: may look
        with pytest.raises(MlflowException) as refused:
            client.delete_experiment(teachers)
        assert refused.value.get_http_status_code() == 403
    with _as(auth_stack.admin):
        assert client.get_experiment(teachers).lifecycle_stage == "active"


def test_gc_as_the_admin_reclaims_a_students_deleted_run(
    auth_stack: AuthStack, student: tuple[str, str], tmp_path: Path, target: Target
) -> None:
    """`invoke gc` logs in as MLflow's admin (a student's artifacts are not the admin's to delete otherwise)."""
    if target.kind == "kubernetes":
        pytest.skip("`invoke gc` is not available on Kubernetes yet (its scheduled CronJob is)")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=auth_stack.project.settings.mlflow_url)
    with _as(student):
        own = client.create_experiment(f"student-gc-{uuid.uuid4().hex[:8]}")
        auth_stack.experiments.append(own)
        run_id = client.create_run(own).info.run_id
        artifact = tmp_path / "deleted.txt"
        artifact.write_text("reclaimed by gc")
        client.log_artifact(run_id, str(artifact))
        client.delete_run(run_id)
    env_file = auth_stack.project.env_file
    at_once = env_file.with_name(f"{env_file.name}.gc")
    descriptor = os.open(at_once, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        kept = [line for line in env_file.read_text(encoding="utf-8").splitlines()
                if line.partition("=")[0].strip() != "MLFLOW_GC_OLDER_THAN"]  # fmt: skip
        stream.write("\n".join([*kept, "MLFLOW_GC_OLDER_THAN=0s"]) + "\n")
    try:
        env = dict(os.environ) | {ENV_FILE_VARIABLE: str(at_once)}
        done = subprocess.run([sys.executable, "-m", "invoke", "gc"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    finally:
        at_once.unlink(missing_ok=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Run with ID {run_id} has been permanently deleted" in done.stdout
    with _as(auth_stack.admin), pytest.raises(MlflowException) as gone:
        client.get_run(run_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_roster_is_imported_once_and_removed(auth_stack: AuthStack, tmp_path: Path) -> None:
    import csv

    suffix = uuid.uuid4().hex[:6]
    students = [f"roster-{suffix}-{n}" for n in range(3)]
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Username;Email;Section\n" + "".join(f"{s};{s}@school.example;A\n" for s in students), encoding="utf-8"
    )
    try:
        imported = _invoke(auth_stack, "user.import", str(roster))
        assert imported.returncode == 0, imported.stderr
        with (tmp_path / "roster.passwords.csv").open(encoding="utf-8-sig", newline="") as handle:
            logins = {row["username"]: row["password"] for row in csv.DictReader(handle, delimiter=";")}
        assert sorted(logins) == students
        assert not any(password in imported.stdout + imported.stderr for password in logins.values())
        for login in logins.items():
            assert _get(auth_stack, SEARCH, params={"max_results": 1}, auth=login).status_code == 200

        again = _invoke(auth_stack, "user.import", str(roster), "--out", str(tmp_path / "again.csv"))
        assert again.returncode == 0, again.stderr
        assert "created no login" in again.stdout
        assert "kept 3 login(s)" in again.stdout
        assert not (tmp_path / "again.csv").exists()
    finally:
        removed = _invoke(auth_stack, "user.remove", "--roster", str(roster))
    assert removed.returncode == 0, removed.stderr
    assert "removed 3 MLflow login(s)" in removed.stdout
    for login in logins.items():
        assert _get(auth_stack, SEARCH, params={"max_results": 1}, auth=login).status_code == 401
