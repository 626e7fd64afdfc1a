"""The MLflow image every target runs: what it installs, its Dockerfile, what it is built from, and
building (and pushing) it for a shared server. Compose builds it through its compose file."""

from __future__ import annotations

import hashlib

from trackstack import engine
from trackstack.console import indent, say, write_files
from trackstack.errors import TrackstackError
from trackstack.paths import PROJECT_FILES, constraints_file
from trackstack.project import Project
from trackstack.settings import Settings, artifact_download_warning
from trackstack.templating import render_template

# The MLflow image's Python dependencies besides MLflow itself, pinned for repeatable builds.
PSYCOPG2_VERSION = "2.9.10"
BOTO3_VERSION = "1.38.23"
# uvicorn, which serves MLflow 3, runs on these C implementations when they are installed (what
# its "standard" extra adds for speed): uvloop's event loop and httptools' HTTP parser instead of
# asyncio's loop and the pure-Python h11. Their versions come from the lock. bench/README.md has
# what they gain (metrics/s of the tracking clients).
UVICORN_SPEEDUPS = ("uvloop", "httptools")
# `mlflow server --expose-prometheus` imports it (MLflow's "extras", not its "auth" extra); its version
# comes from the lock.
PROMETHEUS_EXPORTER = "prometheus-flask-exporter"
# The scheduled `mlflow gc` (trackstack.gc_runner, copied into the image) reads MLFLOW_GC_SCHEDULE with
# trackstack.schedule, which is croniter's cron arithmetic; its version comes from the lock.
CRONITER = "croniter"

DOCKERFILE = "Dockerfile.mlflow"
DOCKERFILE_LABEL = "org.trackstack.dockerfile-sha256"
# Copied into the MLflow image: waits for Postgres and MinIO, then runs the server.
MLFLOW_ENTRYPOINT = PROJECT_FILES / "docker" / "mlflow-entrypoint.py"
# trackstack's modules the image runs besides (the scheduled `mlflow gc`: gc_runner), on its PYTHONPATH;
# they import nothing beyond the standard library and croniter.
PACKAGE_DIR = PROJECT_FILES / "src" / "trackstack"
IMAGE_MODULES = ("__init__.py", "schedule.py", "gc_runner.py")


class ImageError(TrackstackError):
    """The MLflow image could not be pushed to its registry."""


def image_requirements(mlflow_version: str) -> list[str]:
    """What the MLflow image installs (and `invoke lock` resolves): MLflow with its auth extra, the
    Postgres driver, the S3 client, uvicorn's speed-ups."""
    return [
        f"mlflow[auth]=={mlflow_version}",
        f"psycopg2-binary=={PSYCOPG2_VERSION}",
        f"boto3=={BOTO3_VERSION}",
        *UVICORN_SPEEDUPS,
        PROMETHEUS_EXPORTER,
        CRONITER,
    ]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def render_dockerfile(settings: Settings) -> str:
    return render_template(
        f"{DOCKERFILE}.j2",
        base_image=settings.mlflow_base_image,
        mlflow_version=settings.mlflow_version,
        lock=constraints_file(settings.mlflow_version).relative_to(PROJECT_FILES).as_posix(),
        entrypoint=MLFLOW_ENTRYPOINT.relative_to(PROJECT_FILES).as_posix(),
        modules=[(PACKAGE_DIR / module).relative_to(PROJECT_FILES).as_posix() for module in IMAGE_MODULES],
        server_skips_pandas=_release(settings.mlflow_version) < (3, 9),
    )


def build_digest(settings: Settings, dockerfile: str) -> str:
    """What the MLflow image is built from: its Dockerfile, its dependency lock, its entrypoint and modules."""
    lock = constraints_file(settings.mlflow_version).read_bytes()
    modules = [(PACKAGE_DIR / module).read_bytes() for module in IMAGE_MODULES]
    return hashlib.sha256(b"\0".join((dockerfile.encode(), lock, MLFLOW_ENTRYPOINT.read_bytes(), *modules))).hexdigest()


def image_ref(settings: Settings, build_digest: str) -> str:
    """The MLflow image in the registry: its tag says the MLflow version and what it was built from."""
    return f"{settings.mlflow_image_repository}:{settings.mlflow_version}-{build_digest[:12]}"


def warn_of_artifact_downloads(settings: Settings) -> None:
    """Say so when the pinned MLflow server would send clients to download from inside the stack."""
    warning = artifact_download_warning(settings.mlflow_version)
    if warning:
        say(f"warning: {warning}")


def build_image(project: Project, *, push: bool = True) -> str:
    """Write the MLflow Dockerfile, build the image it describes (push it, unless told not to); its reference."""
    warn_of_artifact_downloads(project.settings)
    dockerfile = render_dockerfile(project.settings)
    write_files(project.root, {DOCKERFILE: dockerfile})
    digest = build_digest(project.settings, dockerfile)
    image = image_ref(project.settings, digest)
    build_and_push(project, image, digest, push=push)
    return image


def build_and_push(
    project: Project, image: str, digest: str, *, push: bool = True, dockerfile: str = DOCKERFILE
) -> None:
    """Build the MLflow image (or another of `dockerfile`) on the target engine unless it is there, then push
    it for every node."""
    if engine.image_id(image) is not None:
        say(f"image {image} is built")
    elif engine.run(["docker", "pull", "--quiet", image], capture=True, check=False).returncode == 0:
        say(f"image {image} is in the registry")  # its tag names what it is built from
    else:
        say(
            f"building {image}"
            + (" (a first build downloads MLflow: a few minutes)" if dockerfile == DOCKERFILE else "")
        )
        engine.run(["docker", "build", "--file", str(project.root / dockerfile), "--tag", image,
                    "--label", f"{DOCKERFILE_LABEL}={digest}", str(project.root)])  # fmt: skip
    if not push:
        say(f"not pushing {image} (MLFLOW_IMAGE_PUSH=false: the nodes have it)")
        return
    result = engine.run(["docker", "push", image], capture=True, check=False)
    if result.returncode != 0:
        raise ImageError(
            f"`docker push {image}` failed:\n{indent(result.stderr.strip())}\n"
            "Fix: check MLFLOW_IMAGE_REPOSITORY in .env; the registry must accept pushes from here "
            "(`docker login REGISTRY`; a registry without TLS must be in the engine's insecure-registries)."
        )
    say(f"pushed {image}")
