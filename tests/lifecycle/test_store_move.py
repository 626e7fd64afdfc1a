"""Moving the artifacts across stores on Compose: `invoke backup` on the MinIO stack, ARTIFACT_STORE=seaweedfs
in `.env`, `invoke up`, `invoke restore PATH --yes`: every run, its artifact location and every object's bytes
are in SeaweedFS; then the same way back, with a run logged on SeaweedFS that MinIO never had.

`invoke up` with the other store replaces the container `minio` and mounts that store's own volume (an empty
one the first time, which `up` seeds with the bucket); the other store's volume is kept untouched."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lifecycle.helpers import Invoke, assert_intact, bucket_objects, log_runs
from trackstack.project import Project
from trackstack.validation import RELAXED, load_settings


def _with_store(project: Project, store: str, path: Path) -> Project:
    """The project's `.env` with ARTIFACT_STORE=store, as a user edits it: the same stack, the same secrets."""
    lines = [line for line in project.env_file.read_text(encoding="utf-8").splitlines()
             if not line.startswith("ARTIFACT_STORE=")]  # fmt: skip
    path.write_text("\n".join([*lines, f"ARTIFACT_STORE={store}"]) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED))


def _backup(invoke: Invoke, project: Project, into: Path) -> str:
    match = re.search(
        r"backup written to (\S+)", invoke("backup", "--into", str(into), env_file=project.env_file).stdout
    )
    assert match
    return match[1]


def _artifact_uris(project: Project, run_ids: list[str]) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    return {run_id: client.get_run(run_id).info.artifact_uri for run_id in run_ids}


@pytest.fixture
def seaweedfs(project: Project, invoke: Invoke, tmp_path: Path) -> Iterator[Project]:
    if project.settings.artifact_store != "minio":
        pytest.skip(f"starts from a MinIO stack; this one's ARTIFACT_STORE is {project.settings.artifact_store}")
    env_file = ROOT / f".env.{project.settings.compose_project_name}-seaweedfs"
    yield _with_store(project, "seaweedfs", env_file)
    env_file.unlink(missing_ok=True)
    # The stack as it was: MinIO again (whatever failed), SeaweedFS's volume gone.
    invoke("up", env_file=project.env_file, check=False)
    volume = f"{project.settings.compose_project_name}_seaweedfs-data"
    subprocess.run(["docker", "volume", "rm", volume], capture_output=True, check=False)


def test_artifacts_move_from_minio_to_seaweedfs_and_back(
    project: Project, seaweedfs: Project, invoke: Invoke, tmp_path: Path
) -> None:
    logged = log_runs(project, tmp_path, count=2)
    # One artifact past the S3 clients' multipart threshold (MLflow's and the backup's): 12 MiB of random bytes.
    from mlflow.tracking import MlflowClient

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 4096 * 12)
    big_run = next(iter(logged.runs))
    MlflowClient(tracking_uri=project.settings.mlflow_url).log_artifact(big_run, str(big))
    uris = _artifact_uris(project, list(logged.runs))
    objects = bucket_objects(project)
    assert len(objects) >= 3

    folder = _backup(invoke, project, tmp_path / "from-minio")
    invoke("up", env_file=seaweedfs.env_file)
    assert bucket_objects(seaweedfs) == {}, "SeaweedFS starts from its own, empty volume, its bucket seeded"
    invoke("restore", "--yes", folder, env_file=seaweedfs.env_file)

    assert bucket_objects(seaweedfs) == objects
    assert _artifact_uris(seaweedfs, list(logged.runs)) == uris
    assert_intact(seaweedfs, logged, tmp_path)
    client = MlflowClient(tracking_uri=seaweedfs.settings.mlflow_url)
    assert Path(client.download_artifacts(big_run, "big.bin", str(tmp_path / "big"))).read_bytes() == big.read_bytes()

    # The way back, with a run MinIO never saw.
    (tmp_path / "later").mkdir()
    later = log_runs(seaweedfs, tmp_path / "later", count=1)
    uris |= _artifact_uris(seaweedfs, list(later.runs))
    objects = bucket_objects(seaweedfs)
    folder = _backup(invoke, seaweedfs, tmp_path / "from-seaweedfs")
    invoke("up", env_file=project.env_file)
    invoke("restore", "--yes", folder, env_file=project.env_file)

    assert bucket_objects(project) == objects
    assert _artifact_uris(project, [*logged.runs, *later.runs]) == uris
    assert_intact(project, logged, tmp_path)
    assert_intact(project, later, tmp_path)
