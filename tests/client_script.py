"""What a student's notebook does with MLflow, run by `python client_script.py` in a client's own virtualenv.

It imports nothing of trackstack or of the test suites: only MLflow (and what `pip install mlflow`
brings) and the standard library, at the client's defaults. The tracking server comes from
MLFLOW_TRACKING_URI (and a login from MLFLOW_TRACKING_USERNAME/PASSWORD), as a student sets it.

Logs a run with params, metric steps and one artifact per size in argv, downloads each artifact
back (each download must end within --download-limit seconds, else it is reported as hanging),
logs an sklearn model and loads it by `runs:/` and `models:/` URI. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType

_downloading = ""


def _alarm(signum: int, frame: FrameType | None) -> None:
    # Exit at once: an exception raised here would land in MLflow's own retry loop, which catches all.
    sys.stderr.write(f"download of {_downloading} did not end within the limit: it hangs\n")
    sys.stderr.flush()
    os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int, help="artifact sizes in bytes")
    parser.add_argument("--download-limit", type=int, required=True, help="seconds one download may take")
    parser.add_argument("--model", action="store_true", help="also log and load an sklearn model")
    args = parser.parse_args()

    import mlflow
    from mlflow import MlflowClient

    report: dict[str, object] = {"client": mlflow.__version__, "downloads": {}, "uploads": {}}
    mlflow.set_experiment(f"client-matrix-{mlflow.__version__}-{uuid.uuid4().hex[:8]}")
    # The test beds are Linux hosts; elsewhere (mypy as on Windows) a hung download is not cut short.
    if sys.platform != "win32":
        signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
        folder = Path(tmp)
        mlflow.log_params({"client": mlflow.__version__, "lr": 0.01})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        digests = {}
        for size in args.sizes:
            name = f"blob-{size}.bin"
            path = folder / "up" / name
            path.parent.mkdir(exist_ok=True)
            with path.open("wb") as stream:  # random bytes in 1 MiB pieces: no large buffer in memory
                left = size
                while left:
                    piece = os.urandom(min(left, 1 << 20))
                    stream.write(piece)
                    left -= len(piece)
            digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            started = time.monotonic()
            mlflow.log_artifact(str(path))
            report["uploads"][name] = round(time.monotonic() - started, 2)  # type: ignore[index]
            path.unlink()
        global _downloading
        for name, digest in digests.items():
            started = time.monotonic()
            _downloading = f"{name} ({args.download_limit} s)"
            if sys.platform != "win32":
                signal.alarm(args.download_limit)
            local = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=name, dst_path=str(folder / "down")
            )
            if sys.platform != "win32":
                signal.alarm(0)
            report["downloads"][name] = round(time.monotonic() - started, 2)  # type: ignore[index]
            if hashlib.sha256(Path(local).read_bytes()).hexdigest() != digest:
                sys.exit(f"the downloaded {name} differs from what was logged")
            Path(local).unlink()
        if args.model:
            report["model"] = _model_round_trip(run.info.run_id)
    found = MlflowClient().get_run(run.info.run_id)
    if found.data.metrics.get("loss") != 0.2 or found.data.params.get("client") != mlflow.__version__:
        sys.exit(f"the run reads back wrong: {found.data.metrics} {found.data.params}")
    print(json.dumps(report))


def _model_round_trip(run_id: str) -> dict[str, str]:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(features, features @ [1.5, -2.0] + 3.0)
    registered = f"client-matrix-{uuid.uuid4().hex[:8]}"
    mlflow.sklearn.log_model(model, name="model", registered_model_name=registered)
    expected = model.predict(features)
    loaded = {}
    for uri in (f"runs:/{run_id}/model", f"models:/{registered}/1"):
        predicted = mlflow.pyfunc.load_model(uri).predict(features)
        if not np.allclose(predicted, expected):
            sys.exit(f"the model loaded from {uri} predicts differently")
        loaded[uri.split(":", 1)[0]] = "ok"
    return loaded


if __name__ == "__main__":
    main()
