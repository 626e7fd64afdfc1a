"""A class's roster (a CSV file): `invoke user.import` and `invoke user.remove --roster`.

Parsing and checking are pure and find every bad row before any login changes. The loops take the
function that adds or deletes one login, so they run without a server in the tests. New passwords
go to a file only its owner may read, one row as each login is made, so that a failure midway
keeps the passwords of those already created.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from trackstack.auth import LOGIN_RULE, is_login
from trackstack.errors import TrackstackError

# The user-name column's accepted headers, preferred first (case-insensitive).
NAME_HEADERS = ("username", "user", "name")
PASSWORD_COLUMNS = ("username", "password", "email", "section", "tracking_uri")
# A European Excel writes ';' and some tools a tab; the header line says which.
DELIMITERS = (",", ";", "\t")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

# One login: its name -> its new password, or None when MLflow has it already.
Add = Callable[[str], str | None]
# One login: its name -> whether it was there to delete.
Delete = Callable[[str], bool]


class RosterError(TrackstackError):
    """A roster could not be read, or its logins not all be changed."""


@dataclass(frozen=True)
class Student:
    line: int
    name: str
    email: str = ""
    section: str = ""


@dataclass(frozen=True)
class Roster:
    path: Path
    students: tuple[Student, ...]
    delimiter: str = ","


def read(path: Path, *, admin: str) -> Roster:
    """The roster at `path`, checked (`parse`); an unreadable file is a `RosterError`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RosterError(f"cannot read the roster {path} ({error.strerror or error}). "
                          "Fix: give the path of a CSV file with a username column.") from None  # fmt: skip
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _bad(path, [(line, "is not UTF-8 text")], "save it as 'CSV UTF-8' (Excel: File > Save As)") from None
    return parse(text, path=path, admin=admin)


def parse(text: str, *, path: Path, admin: str) -> Roster:
    """The students of a roster's text, or a `RosterError` that names every bad line."""
    lines = text.splitlines()
    header_line = next((number for number, line in enumerate(lines, 1) if line.strip()), 0)
    if not header_line:
        raise _bad(path, [(1, "the file is empty")])
    header = lines[header_line - 1]
    delimiter = max(DELIMITERS, key=header.count)  # the header's most frequent one; ',' if none
    reader = csv.reader(lines[header_line - 1 :], delimiter=delimiter)
    columns = [cell.strip().lower() for cell in next(reader)]
    name_column = next((columns.index(name) for name in NAME_HEADERS if name in columns), None)
    if name_column is None:
        found = ", ".join(repr(cell) for cell in columns if cell) or "nothing"
        raise _bad(path, [(header_line, f"no user-name column (the header has {found})")],
                   "name the column of logins 'username' in the first row")  # fmt: skip

    def cell(row: list[str], column: str) -> str:
        index = columns.index(column) if column in columns else None
        return row[index].strip() if index is not None and index < len(row) else ""

    students: list[Student] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    end = 1  # the reader's line count so far: a record starts on the line after the last one's end
    for row in reader:
        line, end = header_line + end, reader.line_num
        if not any(value.strip() for value in row):
            continue  # a blank line, or Excel's trailing ';;;'
        student = Student(line, cell(row, columns[name_column]), cell(row, "email"), cell(row, "section"))
        problem = _row_problem(student, admin, seen)
        if problem:
            problems.append((line, problem))
        else:
            students.append(student)
        seen.setdefault(student.name.lower(), line)
    if not students and not problems:
        problems.append((header_line, "only a header: the roster lists nobody"))
    if problems:
        raise _bad(path, problems)
    return Roster(path, tuple(students), delimiter)


def _row_problem(student: Student, admin: str, seen: dict[str, int]) -> str:
    name = student.name
    if not name:
        return "the user name is empty"
    if not is_login(name):
        return f"{name!r} is not a login name ({LOGIN_RULE})"
    if name.lower() == admin.lower():
        return f"{name} is the admin of .env (MLFLOW_ADMIN_USER), not a student"
    if name.lower() in seen:
        return f"{name} repeats line {seen[name.lower()]} (names are compared ignoring case)"
    if student.email and not _EMAIL.fullmatch(student.email):
        return f"{student.email!r} is not an e-mail address"
    return ""


def _bad(
    path: Path, problems: list[tuple[int, str]], fix: str = "correct these lines and run the task again"
) -> RosterError:
    listed = "".join(f"\n  line {line}: {problem}" for line, problem in sorted(problems))
    return RosterError(f"the roster {path} has {len(problems)} problem(s); no login was changed:{listed}\nFix: {fix}.")


def passwords_path(roster: Path) -> Path:
    """Where the new passwords go by default: beside the roster (roster.csv -> roster.passwords.csv)."""
    return roster.with_name(f"{roster.stem}.passwords.csv")


@dataclass
class Imported:
    created: list[Student] = field(default_factory=list)
    kept: list[Student] = field(default_factory=list)


def import_roster(
    roster: Roster, add: Add, out: Path, *, tracking_uri: str, force: bool = False, command: str = ""
) -> Imported:
    """Create each student's login that MLflow lacks and write their passwords to `out` (none: no file).

    `command` is how the user ran the import, for the fix after a failure midway.
    """
    check_out(out, force=force)
    done = Imported()
    with _password_file(out, roster.delimiter, force=force) as write:
        for student in roster.students:
            try:
                password = add(student.name)
            except TrackstackError as error:
                raise _stopped(roster, done, student, error, out, command) from None
            if password is None:
                done.kept.append(student)
                continue
            done.created.append(student)
            write([student.name, password, student.email, student.section, tracking_uri])
    return done


def check_out(out: Path, *, force: bool) -> None:
    """Refuse, before any login changes, a password file that exists (unless forced) or cannot be written."""
    if out.exists() and not force:
        raise RosterError(f"{out} exists (the passwords of an earlier import?); it is not overwritten. "
                          "Fix: move it away, pass --out OTHER.csv, or --force to replace it.")  # fmt: skip
    folder = out.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise RosterError(f"cannot write the password file {out}: its folder is missing or read-only. "
                          "Fix: pass --out with a path in a folder you may write to.")  # fmt: skip


@contextmanager
def _password_file(out: Path, delimiter: str, *, force: bool) -> Iterator[Callable[[list[str]], None]]:
    """A writer of password rows; the file is made (mode 600) at the first row and each row is flushed."""
    handle: TextIO | None = None

    def write(row: list[str]) -> None:
        nonlocal handle
        if handle is None:
            handle = _create_private(out, force=force)
            handle.write(delimiter.join(PASSWORD_COLUMNS) + "\n")
        csv.writer(handle, delimiter=delimiter, lineterminator="\n").writerow(row)
        handle.flush()

    try:
        yield write
    finally:
        if handle is not None:
            handle.close()


def _create_private(out: Path, *, force: bool) -> TextIO:
    """Open a new file only its owner may read: created with mode 600, never widened after the fact."""
    if force:
        out.unlink(missing_ok=True)  # a new file, so the old one's mode does not carry over
    # On Windows the mode only decides read-only; the file inherits its folder's ACL.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(out, flags, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8-sig", newline="")  # the BOM tells Excel it is UTF-8


def _stopped(
    roster: Roster, done: Imported, failed: Student, error: TrackstackError, out: Path, command: str
) -> RosterError:
    remaining = [student.name for student in roster.students[roster.students.index(failed) :]]
    created = ", ".join(student.name for student in done.created)
    saved = f"their passwords are in {out}" if done.created else "no password file was written"
    again = command or f"invoke user.import {roster.path}"
    if done.created:
        again += f" --out {_free_name(out)}"
    return RosterError(
        f"creating login {failed.name} (line {failed.line}) failed: {error}\n"
        f"Created {len(done.created)}: {created or 'none'} ({saved}).\n"
        f"Not created {len(remaining)}: {', '.join(remaining)}.\n"
        f"Fix: once that is solved, run `{again}`: it keeps the logins that exist and creates the rest."
    )


def _free_name(out: Path) -> Path:
    """A name beside `out` that does not exist yet, for the passwords of a second run."""
    number = 2
    while (candidate := out.with_name(f"{out.stem}-{number}{out.suffix}")).exists():
        number += 1
    return candidate


@dataclass
class Removed:
    removed: list[Student] = field(default_factory=list)
    missing: list[Student] = field(default_factory=list)


def remove_roster(roster: Roster, delete: Delete) -> Removed:
    """Delete each student's login (their experiments and runs stay); a login that is not there is noted."""
    done = Removed()
    for student in roster.students:
        try:
            existed = delete(student.name)
        except TrackstackError as error:
            remaining = [s.name for s in roster.students[roster.students.index(student) :]]
            gone = ", ".join(s.name for s in done.removed) or "none"
            raise RosterError(
                f"removing login {student.name} (line {student.line}) failed: {error}\n"
                f"Removed {len(done.removed)}: {gone}. Not removed {len(remaining)}: {', '.join(remaining)}.\n"
                f"Fix: once that is solved, run `invoke user.remove --roster {roster.path}` again."
            ) from None
        (done.removed if existed else done.missing).append(student)
    return done
