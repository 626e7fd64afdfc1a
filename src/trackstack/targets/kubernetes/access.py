"""Reaching a stack deployed to Kubernetes from this machine: port-forwards, psql in the Postgres pod,
MLflow for `invoke user.*`, and what `invoke urls` and `open` show (which links, `views.links`, is pure).

Everything goes through kubectl (`apply.kubectl`): the context and namespace of `.env`.
"""

from __future__ import annotations

import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import webbrowser
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import IO

from trackstack import tls
from trackstack.auth import Server
from trackstack.console import indent, say
from trackstack.project import Project
from trackstack.services import MLFLOW, POSTGRES
from trackstack.settings import Settings
from trackstack.targets.base import Forward, browser_urls, open_in_browser, print_links
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.kubernetes import views as kubeviews
from trackstack.targets.kubernetes.apply import NO_KUBECTL, KubeError, kubectl, require_context, run

# What kubectl port-forward prints once a local port listens (then one line per connection).
_FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")


class Forwarding:
    """Running `kubectl port-forward`s: the local port of each (service, port), and whether one stopped."""

    def __init__(self) -> None:
        self.local: dict[tuple[str, int], int] = {}
        self.stopped = threading.Event()
        self.errors: dict[str, deque[str]] = {}

    def wait(self) -> None:
        """Until a port-forward stops (its pod went away, say): that is an error."""
        self.stopped.wait()
        said = "".join(line for lines in self.errors.values() for line in lines).strip()
        raise KubeError(f"a `kubectl port-forward` stopped:\n{indent(said)}\nFix: `invoke status`, then retry.")


def _pump(stream: IO[str], put: Callable[[str], None], done: Callable[[], None]) -> None:
    for line in stream:
        put(line)
    done()


def _forward(settings: Settings, service: str, forwards: Sequence[Forward], state: Forwarding,
             stack: ExitStack, *, timeout: float) -> None:  # fmt: skip
    args = kubectl(settings, "port-forward", f"service/{service}", *(forward.spec for forward in forwards))
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
    except FileNotFoundError:
        raise KubeError(NO_KUBECTL) from None
    stack.callback(_stop, process)
    lines: queue.Queue[str | None] = queue.Queue()
    errors = state.errors.setdefault(service, deque(maxlen=20))
    stdout, stderr = process.stdout, process.stderr
    if stdout is None or stderr is None:  # never: both are pipes
        raise KubeError("kubectl port-forward started without its pipes")

    def ended() -> None:
        lines.put(None)
        state.stopped.set()

    # Read both pipes for as long as kubectl runs: one full pipe would stall every connection.
    threading.Thread(target=_pump, args=(stdout, lines.put, ended), daemon=True).start()
    said = threading.Thread(target=_pump, args=(stderr, errors.append, lambda: None), daemon=True)
    said.start()
    wanted = {forward.remote_port for forward in forwards}
    deadline = time.monotonic() + timeout
    while wanted - {port for (name, port) in state.local if name == service}:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            _stop(process)
            said.join(timeout=10)  # all it said on stderr, up to its end
            keys = ", ".join(f"{f.key}={f.local_port}" for f in forwards if f.key) or "the ports above"
            raise KubeError(
                f"`{shlex.join(args)}` did not start:\n{indent(''.join(errors).strip() or 'no answer')}\n"
                f"Fix: `invoke status` shows whether {service} runs; a local port in use ({keys}) is another "
                "program's (the local stack's? `invoke down`), or choose another in .env."
            )
        match = _FORWARDING.match(line.strip())
        if match:
            state.local[(service, int(match[2]))] = int(match[1])


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def port_forwards(settings: Settings, forwards: Iterable[Forward], *, timeout: float = 60) -> Iterator[Forwarding]:
    """`kubectl port-forward` of each Service (one kubectl per Service) while the block runs, listening on
    127.0.0.1; a local port 0 is one kubectl picks (`Forwarding.local`)."""
    by_service: dict[str, list[Forward]] = {}
    for forward in forwards:
        by_service.setdefault(forward.service, []).append(forward)
    state = Forwarding()
    with ExitStack() as stack:
        for service, group in by_service.items():
            _forward(settings, service, group, state, stack, timeout=timeout)
        yield state


def psql(project: Project, sql: str, *, database: str | None = None) -> str:
    """Run SQL (on stdin) with psql in the Postgres pod over its local socket, which the image trusts."""
    settings = project.settings
    result = run(kubectl(settings, "exec", "-i", f"{POSTGRES.name}-0", "-c", POSTGRES.name, "--", "psql",
                         "--no-psqlrc", "--quiet", "-tA", "-v", "ON_ERROR_STOP=1", "-U", settings.postgres_user,
                         "-d", database or settings.postgres_db), input_text=sql)  # fmt: skip
    return result.stdout.strip()


@contextmanager
def server(project: Project) -> Iterator[Server]:
    """MLflow as `invoke user.*` reaches it: a port-forward of its Service, asked as from inside the cluster."""
    settings = project.settings
    require_context(settings)
    port = kube.mlflow_service_port(settings)
    with port_forwards(settings, [Forward(MLFLOW.name, 0, port)]) as forwarding:
        local = forwarding.local[(MLFLOW.name, port)]
        if kube.mlflow_serves_tls(settings):  # MLflow speaks TLS itself; its certificate covers 127.0.0.1
            ca = project.root / tls.ca_file(settings)
            yield Server(f"https://127.0.0.1:{local}", str(ca) if tls.mode(settings) == "internal" else True,
                         psql=psql, host=kube.MLFLOW_IN_CLUSTER_HOST, login_url=kube.mlflow_url(settings),
                         apply="invoke deploy")  # fmt: skip
            return
        yield Server(f"http://127.0.0.1:{local}", psql=psql, host=kube.MLFLOW_IN_CLUSTER_HOST,
                     login_url=kube.mlflow_url(settings), apply="invoke deploy")  # fmt: skip


def forward_command(settings: Settings, forward: Forward) -> str:
    return shlex.join(kubectl(settings, "port-forward", f"service/{forward.service}", forward.spec))


def print_urls(project: Project) -> None:
    settings = project.settings
    found = kubeviews.links(settings)
    print_links(found)
    forwarded = [link.forward for link in found if link.forward]
    if forwarded:
        print("  the 127.0.0.1 addresses after (`invoke open` runs those of the web UIs):", flush=True)
        for forward in forwarded:
            print(f"    {forward_command(settings, forward)}", flush=True)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _ended_by_signals() -> Iterator[None]:
    """Ctrl-C, a closed terminal or `kill` end the block as Ctrl-C does (a KeyboardInterrupt), so that the
    port-forwards stop with it: also where the shell started it with SIGINT ignored (`invoke open &`)."""
    ending = [signal.SIGINT, signal.SIGTERM]
    if sys.platform != "win32":  # Windows has no SIGHUP (no terminal to close)
        ending.append(signal.SIGHUP)
    previous = {number: signal.signal(number, _interrupted) for number in ending}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def open_uis(project: Project, *, open_url: Callable[[str], bool] = webbrowser.open) -> None:
    """Open the web UIs; those reached through port-forwards stay open until Ctrl-C."""
    settings = project.settings
    require_context(settings)
    shown = [link for link in kubeviews.links(settings) if link.browser]
    forwards = [link.forward for link in shown if link.forward]
    try:
        with _ended_by_signals(), port_forwards(settings, forwards) as forwarding:
            open_in_browser(browser_urls(shown), open_url)
            if forwards:
                say("port-forwards run until Ctrl-C")
                forwarding.wait()
    except KeyboardInterrupt:  # how one ends it
        say("port-forwards stopped")
