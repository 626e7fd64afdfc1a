"""A class's sections as MLflow workspaces (MLFLOW_WORKSPACES): the setting, the server flag on every
target, the roster's sections, the import's workspace step and the grants it asks MLflow for."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from trackstack import auth, mlflow_gc, shared_server
from trackstack.problems import SettingsError
from trackstack.roster import Roster, RosterError, import_roster, parse, workspace_of
from trackstack.settings import Settings
from trackstack.targets.compose import render as compose
from trackstack.targets.kubernetes import render as kubernetes
from trackstack.validation import validate

SECTIONS = {"MLFLOW_AUTH": "true", "MLFLOW_WORKSPACES": "true"}
URI = "http://mlflow.school.example:5001"
CLASS = "username,section\nann,Group A\nbob,Group B\ncarl,group a\n"  # one section in any case


def roster_of(text: str) -> Roster:
    return parse(text, path=Path("roster.csv"), admin="admin", sections=True)


# -- the setting and the server flag --------------------------------------------------------------


def test_workspaces_are_off_by_default_and_then_no_target_enables_them(settings: Settings) -> None:
    assert settings.mlflow_workspaces is False
    assert "--enable-workspaces" not in compose.mlflow_server_args(settings)


def test_with_workspaces_every_target_starts_mlflow_with_them(values: dict[str, str]) -> None:
    settings = validate(values | SECTIONS)
    for args in (
        compose.mlflow_server_args(settings),
        shared_server.mlflow_server_args(settings),  # Swarm
        kubernetes.mlflow_server_args(settings),
    ):
        assert "--app-name=basic-auth" in args
        assert "--enable-workspaces" in args


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"MLFLOW_AUTH": "false"}, "set MLFLOW_AUTH=true too"),
        ({"MLFLOW_VERSION": "3.8.1"}, "MLflow 3.8.1's logins do not know workspaces"),
        ({"MLFLOW_WORKSPACES": "maybe"}, ""),
    ],
)
def test_workspaces_without_logins_or_with_an_older_mlflow_are_refused(
    values: dict[str, str], extra: dict[str, str], reason: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        validate(values | SECTIONS | extra)
    (problem,) = [p for p in caught.value.problems if p.key == "MLFLOW_WORKSPACES"]
    assert reason in problem.reason


# -- the roster's sections --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "workspace"),
    [
        ("Group A", "group-a"),
        ("  MON_9:00 / Lab  ", "mon-9-00-lab"),
        ("Grüne Gruppe", "gr-ne-gruppe"),
        ("2026", "2026"),
        ("x" * 70 + "-y", "x" * 63),
        ("--", ""),
    ],
)
def test_a_section_names_its_workspace_as_mlflow_spells_them(section: str, workspace: str) -> None:
    assert workspace_of(section) == workspace


def test_every_section_problem_is_named_by_its_line() -> None:
    text = "username,section\nann,A\nbob,\ncarl,!!!\ndora,Default\neve,a.\nfay,Api\ngus,a\n"
    with pytest.raises(RosterError) as caught:
        roster_of(text)
    message = str(caught.value)
    assert "has 5 problem(s); no login was changed" in message
    assert "line 3: no section" in message
    assert "line 4: section '!!!' has no letter or digit" in message
    assert "line 5: section 'Default' would be the workspace 'default', a name MLflow keeps" in message
    assert "line 6: sections 'a.' and 'A' (line 2) would share the workspace 'a'" in message
    assert "line 7: section 'Api' would be the workspace 'api'" in message


def test_without_workspaces_a_section_is_only_a_column() -> None:
    roster = parse("username,section\nann,\nbob,!!!\n", path=Path("roster.csv"), admin="admin")
    assert [s.name for s in roster.students] == ["ann", "bob"]


# -- the import's workspace step ------------------------------------------------------------------


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_each_student_new_or_kept_joins_their_sections_workspace_which_the_file_names(tmp_path: Path) -> None:
    joined: list[tuple[str, str]] = []
    out = tmp_path / "passwords.csv"
    done = import_roster(
        roster_of(CLASS.replace("Group B", "B")), lambda name: None if name == "bob" else f"pw-{name}", out,
        tracking_uri=URI, join=lambda name, workspace: joined.append((name, workspace)),
    )  # fmt: skip
    assert joined == [("ann", "group-a"), ("bob", "b"), ("carl", "group-a")]
    assert [s.name for s in done.kept] == ["bob"]
    assert [(row["username"], row["workspace"]) for row in rows(out)] == [("ann", "group-a"), ("carl", "group-a")]


def test_a_failed_workspace_step_keeps_the_new_password_and_says_what_is_left(tmp_path: Path) -> None:
    out = tmp_path / "passwords.csv"

    def join(name: str, workspace: str) -> None:
        if name == "bob":
            raise auth.AuthError("MLflow refused to create the workspace group-b (403 : no)")

    with pytest.raises(RosterError) as caught:
        import_roster(roster_of(CLASS), lambda name: f"pw-{name}", out, tracking_uri=URI, join=join)
    message = str(caught.value)
    assert message.startswith("putting bob in the workspace group-b (line 3) failed: MLflow refused")
    assert "Created 2: ann, bob" in message
    assert "Not created 1: carl." in message
    assert [row["username"] for row in rows(out)] == ["ann", "bob"]


# -- what the import asks of MLflow (a stand-in for its workspace and role APIs) --------------------


@pytest.mark.parametrize(
    ("permission", "grants"),
    [
        ("READ", [("workspace", "*", "USE"), ("experiment", "*", "READ"), ("registered_model", "*", "READ")]),
        ("NO_PERMISSIONS", [("workspace", "*", "USE")]),
    ],
)
def test_a_sections_role_lets_members_create_and_keeps_envs_default_on_classmates_work(
    permission: str, grants: list[tuple[str, str, str]]
) -> None:
    assert list(auth.student_grants(permission)) == grants


class _Rbac(BaseHTTPRequestHandler):
    """Workspaces, roles, grants and assignments in memory, answering as MLflow 3.18 does."""

    workspaces: ClassVar[set[str]] = set()
    roles: ClassVar[list[dict[str, Any]]] = []
    assigned: ClassVar[set[tuple[str, int]]] = set()
    calls: ClassVar[list[str]] = []

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _exists(self, what: str) -> None:
        self._answer(400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"{what} already exists"})

    def _body(self) -> dict[str, Any]:
        return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.calls.append(f"GET {url.path}")
        workspace = parse_qs(url.query)["workspace"][0]
        self._answer(200, {"roles": [role for role in self.roles if role["workspace"] == workspace]})

    def do_POST(self) -> None:
        body, path = self._body(), self.path
        self.calls.append(f"POST {path}")
        if path.endswith("/mlflow/workspaces"):
            if body["name"] in self.workspaces:
                return self._exists("workspace")
            self.workspaces.add(body["name"])
            return self._answer(201, {"workspace": {"name": body["name"]}})
        if path.endswith("/roles/create"):
            role = {"id": len(self.roles) + 1, "name": body["name"], "workspace": body["workspace"], "permissions": []}
            self.roles.append(role)
            return self._answer(200, {"role": role})
        if path.endswith("/roles/permissions/add"):
            role = self.roles[body["role_id"] - 1]
            grant = {"id": len(role["permissions"]) + 100 * role["id"], **body}
            role["permissions"].append(grant)
            return self._answer(200, {"role_permission": grant})
        assignment = (body["username"], body["role_id"])  # roles/assign
        if assignment in self.assigned:
            return self._exists("assignment")
        self.assigned.add(assignment)
        return self._answer(200, {})

    def do_PATCH(self) -> None:
        body = self._body()
        self.calls.append(f"PATCH {self.path}")
        for role in self.roles:
            for grant in role["permissions"]:
                if grant["id"] == body["role_permission_id"]:
                    grant["permission"] = body["permission"]
        self._answer(200, {})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rbac_api() -> Iterator[auth.Server]:
    _Rbac.workspaces, _Rbac.roles, _Rbac.assigned, _Rbac.calls = {"group-b"}, [], set(), []
    server = HTTPServer(("127.0.0.1", 0), _Rbac)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield auth.Server(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


def test_the_workspace_step_makes_what_is_missing_once_and_runs_again_safely(
    values: dict[str, str], rbac_api: auth.Server
) -> None:
    settings = validate(values | SECTIONS)
    sections = auth.Workspaces(settings, rbac_api)
    for name, workspace in [("ann", "group-a"), ("bob", "group-b"), ("carl", "group-a")]:
        sections.join(name, workspace)
    assert _Rbac.workspaces == {"group-a", "group-b"}
    assert [(role["workspace"], role["name"]) for role in _Rbac.roles] == [
        ("group-a", auth.STUDENT_ROLE), ("group-b", auth.STUDENT_ROLE),
    ]  # fmt: skip
    assert [(g["resource_type"], g["permission"]) for g in _Rbac.roles[0]["permissions"]] == [
        ("workspace", "USE"), ("experiment", "READ"), ("registered_model", "READ"),
    ]  # fmt: skip
    assert _Rbac.assigned == {("ann", 1), ("bob", 2), ("carl", 1)}
    assert _Rbac.calls.count("POST /api/3.0/mlflow/workspaces") == 2  # once per workspace, not per student

    # Run again after .env's default permission changed: nothing is duplicated, the grants follow .env.
    settings = validate(values | SECTIONS | {"MLFLOW_DEFAULT_PERMISSION": "EDIT"})
    auth.Workspaces(settings, rbac_api).join("ann", "group-a")
    assert len(_Rbac.roles) == 2
    assert [g["permission"] for g in _Rbac.roles[0]["permissions"]] == ["USE", "EDIT", "EDIT"]
    assert _Rbac.assigned == {("ann", 1), ("bob", 2), ("carl", 1)}


def test_gc_on_every_target_knows_the_workspaces_once_they_are_on(values: dict[str, str]) -> None:
    """MLflow 3.18's gc refuses a store with experiments in workspaces unless told of them."""
    off, on = validate(values | {"MLFLOW_AUTH": "true"}), validate(values | SECTIONS)
    assert "--all-workspaces" not in mlflow_gc.gc_args(off)
    assert "MLFLOW_ENABLE_WORKSPACES" not in mlflow_gc.environment(off, shared=True)
    assert mlflow_gc.gc_args(on)[-1] == "--all-workspaces"
    for environment in (
        mlflow_gc.environment(on, shared=False),
        mlflow_gc.environment(on, shared=True),
        mlflow_gc.exec_environment(on),
    ):
        assert environment["MLFLOW_ENABLE_WORKSPACES"] == "true"
