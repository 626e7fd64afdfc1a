"""Reaching a stack on Kubernetes from this machine, without a cluster: which links, which port-forwards,
and how a port-forward's start and failure are read (a stand-in kubectl on PATH)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.unit.test_kube import KUBERNETES
from trackstack import auth
from trackstack.settings import Settings
from trackstack.targets.kubernetes import access as kubeaccess
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.kubernetes import views as kubeviews
from trackstack.targets.kubernetes.apply import KubeError
from trackstack.validation import validate


@pytest.fixture
def kube_settings(values: dict[str, str]) -> Settings:
    return validate(values | KUBERNETES)


def test_mlflow_is_forwarded_only_from_a_cluster_ip_without_an_ingress(values: dict[str, str]) -> None:
    def mlflow(**extra: str) -> kubeviews.Link:
        return kubeviews.links(validate(values | KUBERNETES | extra))[0]

    cluster_ip = mlflow(KUBE_MLFLOW_SERVICE="ClusterIP", MLFLOW_PORT="5001")
    assert (cluster_ip.url, cluster_ip.forward) == (
        "http://127.0.0.1:5001",
        kubeviews.Forward("mlflow", 5001, 5000, "MLFLOW_PORT"),
    )
    assert mlflow(KUBE_INGRESS_HOST="mlflow.school.example").forward is None
    assert mlflow(KUBE_INGRESS_HOST="mlflow.school.example").url == "https://mlflow.school.example"
    node_port = mlflow(KUBE_MLFLOW_SERVICE="NodePort", MLFLOW_PORT="30501")
    assert (node_port.url, node_port.forward) == ("https://127.0.0.1:30501", None)  # MLflow serves TLS itself
    in_front = mlflow(KUBE_MLFLOW_SERVICE="NodePort", MLFLOW_PORT="30501", TLS_TERMINATED_IN_FRONT="true")
    assert in_front.url == "http://127.0.0.1:30501"  # plain here: .env says TLS ends in front of it
    # A LoadBalancer's Service port is MLFLOW_PORT: that is what a forward must name.
    balancer = kube.mlflow_service_port(validate(values | KUBERNETES | {"KUBE_MLFLOW_SERVICE": "LoadBalancer"}))
    assert balancer == int(values["MLFLOW_PORT"])


def test_the_other_uis_are_forwarded_on_their_env_ports(kube_settings: Settings) -> None:
    links = {link.title: link for link in kubeviews.links(kube_settings)}
    ports = kube_settings.ports
    assert links["pgAdmin"].forward == kubeviews.Forward("pgadmin", ports["PGADMIN_PORT"], 80, "PGADMIN_PORT")
    assert links["MinIO console"].forward == kubeviews.Forward(
        "minio", ports["MINIO_CONSOLE_PORT"], 9001, "MINIO_CONSOLE_PORT"
    )
    assert (
        links["PostgreSQL"].url
        == f"postgresql://{kube_settings.postgres_user}@127.0.0.1:{ports['POSTGRES_PORT']}/{kube_settings.postgres_db}"
    )
    assert [link.title for link in kubeviews.links(kube_settings) if link.browser] == [
        "MLflow UI",
        "pgAdmin",
        "MinIO console",
    ]


def test_urls_print_each_forward_as_a_kubectl_command_and_no_secret(
    kube_settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from trackstack.project import Project

    kubeaccess.print_urls(Project(root=tmp_path, env_file=tmp_path / ".env", settings=kube_settings))
    shown = capsys.readouterr().out
    assert "kubectl --context school-cluster --namespace trackstack port-forward service/pgadmin 5051:80" in shown
    assert not [secret for secret in kube_settings.secret_values() if secret in shown]


def stand_in_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A `kubectl` first on PATH that runs `script` (sh) and records its arguments."""
    folder = tmp_path / "bin"
    folder.mkdir()
    kubectl = folder / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "args"}\n{script}\n', encoding="utf-8")
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return tmp_path / "args"


def test_a_port_forward_yields_the_ports_kubectl_listens_on_and_stops_it(
    kube_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = stand_in_kubectl(tmp_path, monkeypatch, 'echo "Forwarding from 127.0.0.1:41234 -> 9000"\n'
                            'echo "Forwarding from [::1]:41234 -> 9000"\n'
                            'echo "Forwarding from 127.0.0.1:41235 -> 9001"\nexec sleep 60')  # fmt: skip
    forwards = [kubeviews.Forward("minio", 0, 9000), kubeviews.Forward("minio", 0, 9001)]
    with kubeaccess.port_forwards(kube_settings, forwards) as forwarding:
        assert forwarding.local == {("minio", 9000): 41234, ("minio", 9001): 41235}
        assert not forwarding.stopped.is_set()
    assert forwarding.stopped.wait(timeout=10)  # kubectl was stopped with the block
    assert args.read_text().split() == ["--context", "school-cluster", "--namespace", "trackstack", "port-forward",
                                        "service/minio", ":9000", ":9001"]  # fmt: skip


def test_a_port_forward_that_cannot_listen_names_the_env_key(
    kube_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_kubectl(tmp_path, monkeypatch, 'echo "Unable to listen on port 5051: bind: address already in use" >&2\n'
                     'echo "error: unable to listen on any of the requested ports" >&2\nexit 1')  # fmt: skip
    with (
        pytest.raises(KubeError) as caught,
        kubeaccess.port_forwards(kube_settings, [kubeviews.Forward("pgadmin", 5051, 80, "PGADMIN_PORT")]),
    ):
        pass
    assert "address already in use" in str(caught.value)
    assert "PGADMIN_PORT=5051" in str(caught.value)


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []  # noqa: RUF012 - one request per test

    def do_POST(self) -> None:
        self.seen.append(self.headers["Host"])
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_through_a_port_forward_the_user_tasks_send_a_host_mlflow_answers(
    kube_settings: Settings, recorder: str
) -> None:
    _Recorder.seen = []
    server = auth.Server(recorder, host=kube.MLFLOW_IN_CLUSTER_HOST, login_url="http://mlflow.school.example")
    auth.add_user(kube_settings, "student01", server=server, new_password=lambda: "a-new-password")
    assert _Recorder.seen == ["mlflow:5000"]
    assert server.users_url == "http://mlflow.school.example"
    assert auth.Server(recorder).users_url == recorder


def test_open_holds_the_forwards_until_a_signal_ends_it_as_ctrl_c_does(
    kube_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from trackstack.project import Project

    stand_in_kubectl(tmp_path, monkeypatch, 'case "$*" in *get-contexts*) echo school-cluster; exit 0;; '
                     "*version*) exit 0;; esac\n"
                     'for last in "$@"; do :; done\necho "Forwarding from 127.0.0.1:${last%%:*} -> ${last##*:}"\n'
                     "exec sleep 60")  # fmt: skip
    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        if len(opened) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a closed terminal would, once all are open
        return True

    before = signal.getsignal(signal.SIGTERM)
    kubeaccess.open_uis(Project(root=tmp_path, env_file=tmp_path / ".env", settings=kube_settings), open_url=browser)
    ports = kube_settings.ports
    assert opened == [kube.mlflow_url(kube_settings), f"http://127.0.0.1:{ports['PGADMIN_PORT']}",
                      f"http://127.0.0.1:{ports['MINIO_CONSOLE_PORT']}"]  # fmt: skip
    assert "trackstack: port-forwards stopped" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == before
