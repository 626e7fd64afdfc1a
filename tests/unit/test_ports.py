from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from trackstack.ports import busy_ports, port_is_free, port_owner
from trackstack.settings import Settings
from trackstack.validation import validate


@pytest.fixture
def listener() -> Iterator[int]:
    """A real listening socket on a free port of 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_is_free(listener: int) -> None:
    assert not port_is_free("127.0.0.1", listener)


def test_port_owner_names_this_process(listener: int) -> None:
    owner = port_owner(listener)
    if owner is None:
        pytest.skip("the OS hides socket owners from this user")
    assert f"pid {os.getpid()}" in owner


def test_busy_port_is_a_problem_unless_our_service_holds_it(values: dict[str, str], listener: int) -> None:
    values["MLFLOW_PORT"] = str(listener)
    settings: Settings = validate(values)
    problems = [p for p in busy_ports(settings, running_services=set()) if p.key == "MLFLOW_PORT"]
    assert len(problems) == 1
    assert f"port {listener} is in use" in problems[0].reason
    assert not [p for p in busy_ports(settings, running_services={"mlflow"}) if p.key == "MLFLOW_PORT"]
