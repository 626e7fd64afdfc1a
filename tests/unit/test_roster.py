"""A class's roster: parsing, every bad row by line, the import and remove loops, the password file."""

from __future__ import annotations

import copy
import csv
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from invoke.parser.context import ParserContext
from invoke.parser.parser import Parser

from tests.unit.test_tasks import NS
from trackstack import auth
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.roster import Roster, RosterError, import_roster, parse, passwords_path, read, remove_roster
from trackstack.settings import Settings
from trackstack.validation import validate

ADMIN = "admin"
URI = "http://mlflow.school.example:5001"


def roster_of(text: str) -> Roster:
    return parse(text, path=Path("roster.csv"), admin=ADMIN)


def names(roster: Roster) -> list[str]:
    return [student.name for student in roster.students]


@pytest.mark.parametrize(
    "text",
    [
        "username,email,section\nann,ann@school.example,A\nbob,,B\n",
        "User;E-Mail;Section\r\nann;ann@school.example;A\r\nbob;;B\r\n",  # a European Excel's ';'
        "Name\tSection\nann\tA\nbob\tB\n",
        "\n  Email , USERNAME \n ann@school.example , ann \n\n,bob\n,,\n",  # padded, blank rows, bob has no email
    ],
)
def test_the_header_names_the_columns_in_any_case_and_the_delimiter_is_sniffed(text: str) -> None:
    roster = roster_of(text)
    assert names(roster) == ["ann", "bob"]
    assert roster.students[0].email in ("", "ann@school.example")


def test_a_utf8_file_from_excel_with_its_byte_order_mark_reads_as_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes("Username;Email;Section\r\nann;ann@school.example;Grüne Gruppe\r\n".encode("utf-8-sig"))
    roster = read(path, admin=ADMIN)
    assert roster.students[0].name == "ann"
    assert roster.students[0].section == "Grüne Gruppe"
    assert roster.delimiter == ";"


def test_username_wins_over_name_when_a_roster_has_both() -> None:
    roster = roster_of("name,username\nAnn Smith,asmith\n")
    assert names(roster) == ["asmith"]


BAD = (
    "username,email,section\n"
    "ann,ann@school.example,A\n"  # 2: fine
    "ann smith,,A\n"  # 3: a space
    ",bob@school.example,B\n"  # 4: no name
    "ANN,,B\n"  # 5: ann again
    "carl,carl@,B\n"  # 6: not an e-mail
    "Admin,,B\n"  # 7: the admin
    "dora,,C\n"  # 8: fine
)


def test_every_bad_row_is_named_by_its_line_and_nothing_is_returned() -> None:
    with pytest.raises(RosterError) as caught:
        roster_of(BAD)
    message = str(caught.value)
    assert "has 5 problem(s); no login was changed" in message
    lines = [line.strip() for line in message.splitlines() if line.strip().startswith("line ")]
    assert lines == [
        f"line 3: 'ann smith' is not a login name ({auth.LOGIN_RULE})",
        "line 4: the user name is empty",
        "line 5: ANN repeats line 2 (names are compared ignoring case)",
        "line 6: 'carl@' is not an e-mail address",
        "line 7: Admin is the admin of .env (MLFLOW_ADMIN_USER), not a student",
    ]
    assert message.endswith("Fix: correct these lines and run the task again.")


def test_the_login_rule_is_the_one_user_add_applies() -> None:
    for name in ("student01", "a.b@school.example", "x-y_z", "-dash", "a" * 65, "ann smith", "ünal"):
        rejected = RosterError if not auth.is_login(name) else None
        if rejected:
            with pytest.raises(RosterError):
                roster_of(f"username\n{name}\n")
        else:
            assert names(roster_of(f"username\n{name}\n")) == [name]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "line 1: the file is empty"),
        ("\n \n", "line 1: the file is empty"),
        ("Student,Email\nann,ann@school.example\n", "line 1: no user-name column (the header has 'student', 'email')"),
        ("username,email\n\n", "line 1: only a header: the roster lists nobody"),
    ],
)
def test_a_file_without_students_is_refused(text: str, problem: str) -> None:
    with pytest.raises(RosterError) as caught:
        roster_of(text)
    assert problem in str(caught.value)


def test_a_missing_or_non_utf8_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="cannot read the roster"):
        read(tmp_path / "nowhere.csv", admin=ADMIN)
    path = tmp_path / "ansi.csv"
    path.write_bytes("username,section\nann,A\nbob,Gr\u00fcn\n".encode("cp1252"))
    with pytest.raises(RosterError, match=r"line 3: is not UTF-8 text[\s\S]*CSV UTF-8"):
        read(path, admin=ADMIN)


class FakeMlflow:
    """The add and delete functions of a server that has `existing` logins and fails on `broken` ones."""

    def __init__(self, *existing: str, broken: str = "") -> None:
        self.logins = set(existing)
        self.broken = broken
        self.calls: list[str] = []

    def add(self, name: str) -> str | None:
        self.calls.append(name)
        if name == self.broken:
            raise auth.AuthError(f"MLflow refused to add user {name} (500 : boom)")
        if name in self.logins:
            return None
        self.logins.add(name)
        return f"pw-{name}"

    def delete(self, name: str) -> bool:
        self.calls.append(name)
        if name == self.broken:
            raise auth.AuthError(f"MLflow refused to remove user {name} (500 : boom)")
        if name not in self.logins:
            return False
        self.logins.remove(name)
        return True


CLASS = "username;email;section\nann;ann@school.example;A\nbob;;B\ncarl;carl@school.example;B\n"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_a_bad_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(BAD, encoding="utf-8")
    server = FakeMlflow()
    with pytest.raises(RosterError):
        import_roster(read(path, admin=ADMIN), server.add, passwords_path(path), tracking_uri=URI)
    assert server.calls == []
    assert not passwords_path(path).exists()


def test_the_import_creates_the_missing_keeps_the_rest_and_writes_a_private_file(tmp_path: Path) -> None:
    server = FakeMlflow("bob")
    out = tmp_path / "roster.passwords.csv"
    done = import_roster(roster_of(CLASS), server.add, out, tracking_uri=URI)
    assert [s.name for s in done.created] == ["ann", "carl"]
    assert [s.name for s in done.kept] == ["bob"]
    assert rows(out) == [
        {"username": "ann", "password": "pw-ann", "email": "ann@school.example", "section": "A", "tracking_uri": URI},
        {"username": "carl", "password": "pw-carl", "email": "carl@school.example", "section": "B",
         "tracking_uri": URI},
    ]  # fmt: skip
    if sys.platform != "win32":
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_import_that_creates_nothing_writes_no_file(tmp_path: Path) -> None:
    server = FakeMlflow("ann", "bob", "carl")
    out = tmp_path / "roster.passwords.csv"
    done = import_roster(roster_of(CLASS), server.add, out, tracking_uri=URI)
    assert (done.created, len(done.kept)) == ([], 3)
    assert not out.exists()


def test_an_existing_password_file_is_kept_unless_forced_and_then_replaced_private(tmp_path: Path) -> None:
    out = tmp_path / "roster.passwords.csv"
    out.write_text("earlier passwords\n", encoding="utf-8")
    out.chmod(0o644)
    server = FakeMlflow()
    with pytest.raises(RosterError, match=r"exists .* --force to replace it"):
        import_roster(roster_of(CLASS), server.add, out, tracking_uri=URI)
    assert server.calls == []
    assert out.read_text(encoding="utf-8") == "earlier passwords\n"
    import_roster(roster_of(CLASS), server.add, out, tracking_uri=URI, force=True)
    assert [row["username"] for row in rows(out)] == ["ann", "bob", "carl"]
    if sys.platform != "win32":
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="a umask is POSIX")
def test_the_password_file_is_never_readable_by_others_even_for_a_moment(tmp_path: Path) -> None:
    out = tmp_path / "roster.passwords.csv"
    seen: list[int] = []

    def add(name: str) -> str:
        if out.exists():
            seen.append(stat.S_IMODE(out.stat().st_mode))
        return "pw"

    previous = os.umask(0)
    try:
        import_roster(roster_of(CLASS), add, out, tracking_uri=URI)
    finally:
        os.umask(previous)
    assert seen == [0o600, 0o600]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_failure_midway_keeps_the_passwords_made_and_names_what_is_left(tmp_path: Path) -> None:
    out = tmp_path / "roster.passwords.csv"
    server = FakeMlflow(broken="bob")
    with pytest.raises(RosterError) as caught:
        import_roster(roster_of(CLASS), server.add, out, tracking_uri=URI)
    assert [row["username"] for row in rows(out)] == ["ann"]
    message = str(caught.value)
    assert message.startswith("creating login bob (line 3) failed: MLflow refused to add user bob (500 : boom)")
    assert f"Created 1: ann (their passwords are in {out})." in message
    assert "Not created 2: bob, carl." in message
    again = tmp_path / "roster.passwords-2.csv"
    assert f"run `invoke user.import roster.csv --out {again}`: it keeps the logins that exist" in message

    server.broken = ""  # the server is mended: the suggested run finishes the job
    done = import_roster(roster_of(CLASS), server.add, again, tracking_uri=URI)
    assert ([s.name for s in done.created], [s.name for s in done.kept]) == (["bob", "carl"], ["ann"])
    assert [row["username"] for row in rows(again)] == ["bob", "carl"]


def test_a_failure_at_the_first_login_writes_no_file(tmp_path: Path) -> None:
    out = tmp_path / "roster.passwords.csv"
    with pytest.raises(RosterError, match=r"Created 0: none \(no password file was written\)"):
        import_roster(roster_of(CLASS), FakeMlflow(broken="ann").add, out, tracking_uri=URI)
    assert not out.exists()


def test_remove_by_roster_removes_each_login_and_reports_the_missing() -> None:
    server = FakeMlflow("ann", "carl", "dora")
    done = remove_roster(roster_of(CLASS), server.delete)
    assert ([s.name for s in done.removed], [s.name for s in done.missing]) == (["ann", "carl"], ["bob"])
    assert server.logins == {"dora"}


def test_remove_by_roster_stopped_midway_says_what_is_left() -> None:
    server = FakeMlflow("ann", "bob", "carl", broken="bob")
    with pytest.raises(RosterError) as caught:
        remove_roster(roster_of(CLASS), server.delete)
    assert "Removed 1: ann. Not removed 2: bob, carl." in str(caught.value)
    assert "run `invoke user.remove --roster roster.csv` again" in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "kwargs"),
    [
        (["student01"], {"name": "student01", "roster": False}),
        (["--roster", "roster.csv"], {"name": "roster.csv", "roster": True}),
        (["roster.csv", "--roster"], {"name": "roster.csv", "roster": True}),
    ],
)
def test_user_remove_takes_a_login_or_a_roster(argv: list[str], kwargs: dict[str, object]) -> None:
    task = copy.copy(NS["user.remove"])
    task.help = dict(task.help)  # invoke pops each flag's help as it builds the arguments
    context = ParserContext(name="user.remove", args=task.get_arguments())
    parsed = Parser(contexts=[context]).parse_argv(["user.remove", *argv])
    assert parsed[0].as_kwargs == kwargs


# -- against MLflow's users API (a stand-in that keeps logins in memory) ------------------------


class _Users(BaseHTTPRequestHandler):
    logins: ClassVar[set[str]] = set()

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["username"]
        if name in self.logins:
            self._answer(400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"User '{name}' already exists"})
        else:
            self.logins.add(name)
            self._answer(200, {})

    def do_DELETE(self) -> None:
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["username"]
        if name in self.logins:
            self.logins.remove(name)
            self._answer(200, {})
        else:
            self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"User '{name}' not found"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def users_api() -> Iterator[auth.Server]:
    _Users.logins = {"bob"}
    server = HTTPServer(("127.0.0.1", 0), _Users)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield auth.Server(f"http://127.0.0.1:{server.server_address[1]}", psql=lambda *args, **kwargs: "")
    server.shutdown()


@pytest.fixture
def auth_settings(values: dict[str, str]) -> Settings:
    return validate(values | {"MLFLOW_AUTH": "true"})


def test_mlflow_says_which_logins_exist_and_which_are_missing(
    auth_settings: Settings, users_api: auth.Server, tmp_path: Path
) -> None:
    out = tmp_path / "passwords.csv"
    done = import_roster(
        roster_of(CLASS), lambda name: auth.create_user(auth_settings, name, server=users_api), out, tracking_uri=URI
    )
    assert ([s.name for s in done.created], [s.name for s in done.kept]) == (["ann", "carl"], ["bob"])
    assert _Users.logins == {"ann", "bob", "carl"}
    with pytest.raises(TrackstackError, match="already has a user bob"):
        auth.add_user(auth_settings, "bob", server=users_api)

    project = Project(root=tmp_path, env_file=tmp_path / ".env", settings=auth_settings)
    _Users.logins.remove("carl")
    removed = remove_roster(roster_of(CLASS), lambda name: auth.delete_user(project, name, server=users_api))
    assert ([s.name for s in removed.removed], [s.name for s in removed.missing]) == (["ann", "bob"], ["carl"])
    with pytest.raises(TrackstackError, match="MLflow has no user carl"):
        auth.remove_user(project, "carl", server=users_api)
