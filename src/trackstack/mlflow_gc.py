"""Deleted runs reclaimed: `mlflow gc` as every target runs it, on MLFLOW_GC_SCHEDULE or once (`invoke gc`).

Pure: settings in, the command and the variables that are no secret out. It runs in the MLflow image
(`trackstack.gc_runner`, copied in) with MLflow's own credentials: its Postgres role (PGPASSWORD), its
S3 user, and, with logins, MLflow's admin, whose login gc needs to delete a run's `mlflow-artifacts:`
objects through the tracking server (any other login may not delete others' artifacts). Each target
adds the secrets its own way: Compose `${KEY}` references, Swarm and Kubernetes `*_FILE` variables
(`SHARED_SECRETS`).
"""

from __future__ import annotations

from trackstack import containers, schedule
from trackstack.services import MLFLOW, POSTGRES, SecretUse
from trackstack.settings import Settings

SERVICE = "gc"
RUNNER = ["python", "-m", "trackstack.gc_runner"]
# The loop's healthcheck: its heartbeat file is recent (gc_runner.healthy).
HEALTHCHECK = schedule.heartbeat_probe("gc")
# On Swarm and Kubernetes: gc's secrets as files, by the variable the image's entrypoint sets from each
# (MLflow's role, the store's key MLflow uses there, and the admin's password as the client's).
SHARED_SECRETS = (
    SecretUse("MLFLOW_DB_PASSWORD", "PGPASSWORD"),
    SecretUse("MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"),
    SecretUse("MLFLOW_ADMIN_PASSWORD", "MLFLOW_TRACKING_PASSWORD"),
)


def gc_args(settings: Settings) -> list[str]:
    """`mlflow gc` of every run (and experiment, logged model) deleted more than MLFLOW_GC_OLDER_THAN ago."""
    return [
        "mlflow",
        "gc",
        f"--backend-store-uri={containers.backend_store_uri(settings.mlflow_db_user, settings.postgres_db)}",
        f"--artifacts-destination=s3://{settings.mlflow_bucket}",
        f"--older-than={settings.mlflow_gc_older_than}",
    ]


def loop_command(settings: Settings) -> list[str]:
    """The scheduled service's command: gc_runner's loop around `mlflow gc`."""
    return [*RUNNER, "loop", "--", *gc_args(settings)]


def once_command(settings: Settings) -> list[str]:
    """gc now, once (a one-shot job, or in MLflow's own container)."""
    return [*RUNNER, "once", "--", *gc_args(settings)]


def environment(
    settings: Settings, *, shared: bool, mlflow_address: str = MLFLOW.address, scheme: str = "http"
) -> dict[str, str]:
    """gc's variables that are no secret. `shared`: Swarm or Kubernetes (always with logins); gc uses MLflow's
    own role and S3 user, their secrets as MLflow gets them (services.MLFLOW.secrets); `mlflow_address`:
    MLflow's in-stack host:port (Kubernetes: its Service's port), `scheme` https where MLflow serves TLS itself."""
    environment = {
        "PGUSER": settings.mlflow_db_user,
        "AWS_ACCESS_KEY_ID": settings.mlflow_s3_access_key,
        "MLFLOW_S3_ENDPOINT_URL": f"http://{settings.store.address}",
        # A run's `mlflow-artifacts:` URI means "the tracking server's": gc deletes its objects through it.
        "MLFLOW_TRACKING_URI": f"{scheme}://{mlflow_address}",
        # The image's entrypoint waits for both first.
        "TRACKSTACK_WAIT_FOR": f"{POSTGRES.address} {mlflow_address}",
        "MLFLOW_GC_SCHEDULE": settings.mlflow_gc_schedule,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    if settings.mlflow_auth or shared:  # a shared server always has logins (shared_server.deploy_problems)
        environment["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_admin_user
    return environment


def exec_environment(settings: Settings) -> dict[str, str]:
    """What `invoke gc` adds to MLflow's own container's environment to run gc in it (Compose): the tracking
    server and, with logins, the admin's name (gc_runner takes the password the container holds)."""
    extra = {"MLFLOW_TRACKING_URI": f"http://{MLFLOW.address}"}
    if settings.mlflow_auth:
        extra["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_admin_user
    return extra
