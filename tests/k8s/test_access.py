"""`invoke urls` and `invoke open` on Kubernetes, live (`invoke user.*` runs in test_smoke_suite.py).

`invoke open` opens the browser that $BROWSER names: here a script that fetches each URL and writes
down what answered, while pgAdmin and the MinIO console are reached through its port-forwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT, answers
from tests.swarm.conftest import Deployed, invoke
from trackstack.paths import ENV_FILE_VARIABLE

FETCH = """\
#!{python}
import sys, urllib.error, urllib.request
try:
    status = urllib.request.urlopen(sys.argv[1], timeout=30).status
except urllib.error.HTTPError as error:
    status = error.code
with open({out!r}, "a") as out:
    out.write(f"{{status}} {{sys.argv[1]}}\\n")
"""


def test_urls_name_mlflows_node_port_and_the_port_forwards_of_the_others(deployed: Deployed) -> None:
    settings = deployed.settings
    shown = invoke("urls", env_file=deployed.project.env_file)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.split()[:3] == ["MLflow", "UI", deployed.url] for line in lines), shown.stdout
    for service, remote in (("pgadmin", 80), ("minio", 9000), ("minio", 9001), ("postgres", 5432)):
        assert f"port-forward service/{service} " in shown.stdout
        assert any(line.strip().endswith(f":{remote}") and f"service/{service}" in line for line in lines), service
    assert f"http://127.0.0.1:{settings.ports['PGADMIN_PORT']}" in shown.stdout
    assert not [secret for secret in settings.secret_values() if secret in shown.stdout + shown.stderr]


def test_open_opens_each_ui_through_its_forward_until_ctrl_c(deployed: Deployed, tmp_path: Path) -> None:
    settings = deployed.settings
    out = tmp_path / "opened.txt"
    script = tmp_path / "fetch.py"
    script.write_text(FETCH.format(python=sys.executable, out=str(out)), encoding="utf-8")
    script.chmod(0o755)  # $BROWSER names one program, which gets the URL
    env = dict(os.environ) | {ENV_FILE_VARIABLE: str(deployed.project.env_file), "BROWSER": str(script)}
    # Its own process group: should it not end, the kubectl it started go with it.
    process = subprocess.Popen([sys.executable, "-m", "invoke", "open"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)  # fmt: skip
    said: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: said.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        # Every UI opened (the stand-in fetched it), `invoke open` holds the forwards.
        while not any("port-forwards run until Ctrl-C" in line for line in said):
            assert process.poll() is None, (said, process.stderr.read() if process.stderr else "")
            assert time.monotonic() < deadline, f"invoke open did not open every UI within 120 s: {said}"
            time.sleep(0.5)
        opened = {url: status for status, url in (line.split(" ", 1) for line in out.read_text().splitlines())}
        pgadmin = f"http://127.0.0.1:{settings.ports['PGADMIN_PORT']}"
        console = f"http://127.0.0.1:{settings.ports['MINIO_CONSOLE_PORT']}"
        # MLflow (its NodePort) asks the browser for a login; pgAdmin and the console answer through the forwards.
        assert opened == {deployed.url: "401", pgadmin: "200", console: "200"}
        assert answers("127.0.0.1", settings.ports["PGADMIN_PORT"])
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            if sys.platform != "win32":  # the k8s test bed runs on Linux; Windows has no process groups to kill
                os.killpg(process.pid, signal.SIGKILL)
            raise
        reader.join(timeout=10)
    stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert any("port-forwards stopped" in line for line in said), said
    assert not answers("127.0.0.1", settings.ports["PGADMIN_PORT"])
    assert not answers("127.0.0.1", settings.ports["MINIO_CONSOLE_PORT"])
