"""The scheduled backup's image: its Dockerfile, what it is built from and its name on each target.

It is the stack's POSTGRES_IMAGE (Debian: pg_dump of the server's exact version) with Debian's
python3, boto3 and croniter, and trackstack's own backup modules copied in (`MODULES`: they import
nothing beyond those). Compose builds it through its compose file; a shared server builds and
pushes it beside the MLflow image (`mlflow_image.build_and_push`).
"""

from __future__ import annotations

import hashlib

from trackstack import schedule
from trackstack.console import write_files
from trackstack.mlflow_image import build_and_push
from trackstack.paths import PROJECT_FILES
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.templating import render_template

DOCKERFILE = "Dockerfile.backup"
# Debian's packages (trixie, as the default POSTGRES_IMAGE): the runner's only dependencies.
PACKAGES = ("python3", "python3-boto3", "python3-croniter")
PACKAGE_DIR = PROJECT_FILES / "src" / "trackstack"
# The modules the runner imports, and theirs: none imports pydantic, Docker or the targets.
MODULES = ("__init__.py", "errors.py", "backup_format.py", "backup_dest.py", "schedule.py", "backup_runner.py")
SERVICE = "backup"
# Where a directory destination is mounted in the container (the runner's BACKUP_DEST).
MOUNT = "/backups"
# The runner's healthcheck: its heartbeat file is recent (backup_runner.healthy).
HEALTHCHECK = schedule.heartbeat_probe("backup")


def render_dockerfile(settings: Settings) -> str:
    return render_template(
        f"{DOCKERFILE}.j2",
        base_image=settings.postgres_image,
        packages=PACKAGES,
        modules=[(PACKAGE_DIR / module).relative_to(PROJECT_FILES).as_posix() for module in MODULES],
    )


def build_digest(dockerfile: str) -> str:
    """What the backup image is built from: its Dockerfile and the modules copied in."""
    parts = [dockerfile.encode(), *((PACKAGE_DIR / module).read_bytes() for module in MODULES)]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def local_image(settings: Settings) -> str:
    """The image Compose builds, named by the Postgres image it is built from (its label says the rest)."""
    name, _, digest = settings.postgres_image.partition("@")
    tag = digest.removeprefix("sha256:")[:12] if digest else name.rsplit("/", 1)[-1].partition(":")[2] or "latest"
    return f"{settings.compose_project_name}-backup:{tag}"


def image_ref(settings: Settings, digest: str) -> str:
    """The image in the registry, beside MLflow's: its own tag, `backup-<what it is built from>`."""
    return f"{settings.mlflow_image_repository}:backup-{digest[:12]}"


def registry_image(settings: Settings) -> str:
    """The reference a shared server runs: pushed beside the MLflow image."""
    return image_ref(settings, build_digest(render_dockerfile(settings)))


def build_for_shared_server(project: Project) -> str:
    """Write the Dockerfile, build the image and push it (unless MLFLOW_IMAGE_PUSH=false); its reference."""
    dockerfile = render_dockerfile(project.settings)
    write_files(project.root, {DOCKERFILE: dockerfile})
    digest = build_digest(dockerfile)
    image = image_ref(project.settings, digest)
    build_and_push(project, image, digest, push=project.settings.mlflow_image_push, dockerfile=DOCKERFILE)
    return image


def runner_environment(settings: Settings, *, target: str, dest: str) -> dict[str, str]:
    """The runner's variables that are no secret (each target adds the three secrets its own way)."""
    environment = {
        "TRACKSTACK_PROJECT": settings.compose_project_name,
        "TRACKSTACK_TARGET": target,
        "MLFLOW_VERSION": settings.mlflow_version,
        "MLFLOW_BUCKET": settings.mlflow_bucket,
        "POSTGRES_HOST": "postgres",
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_DB": settings.postgres_db,
        "POSTGRES_AUTH_DB": settings.mlflow_auth_db,
        "STACK_S3_ENDPOINT": "http://minio:9000",
        "STACK_S3_ACCESS_KEY": settings.minio_root_user,
        "BACKUP_SCHEDULE": settings.backup_schedule,
        "BACKUP_KEEP": str(settings.backup_keep),
        "BACKUP_DEST": dest,
    }
    # Where the orchestrator has secrets, the runner reads them from files (backup_dest.environment_secret).
    if is_bucket(settings):
        environment |= {
            "BACKUP_S3_ENDPOINT": settings.backup_s3_endpoint,
            "BACKUP_S3_ACCESS_KEY": settings.backup_s3_access_key,
            "BACKUP_S3_REGION": settings.backup_s3_region,
        }
    return environment


def secret_keys(settings: Settings) -> tuple[str, ...]:
    """The `.env` secrets the runner reads besides Postgres's and the store's: the bucket's key, when one is set."""
    wanted = settings.backup_schedule and is_bucket(settings) and settings.backup_s3_secret_key.get_secret_value()
    return ("BACKUP_S3_SECRET_KEY",) if wanted else ()


def is_bucket(settings: Settings) -> bool:
    return settings.backup_dest.startswith("s3://")


def container_dest(settings: Settings) -> str:
    """BACKUP_DEST as the runner sees it: a bucket as it is, a directory at its mount."""
    return settings.backup_dest if is_bucket(settings) else MOUNT
