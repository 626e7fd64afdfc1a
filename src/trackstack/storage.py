"""MinIO failures in words: every S3 or connection error becomes one message with its fix.

The MinIO SDK raises `S3Error` for answers it dislikes and urllib3's errors when nothing
answers; `minio_errors` turns both into a `StorageError` that names what trackstack was doing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trackstack.errors import TrackstackError
from trackstack.settings import Settings

# S3 error codes that mean "these are not MinIO's credentials".
CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"})


class StorageError(TrackstackError):
    """MinIO refused or did not answer."""


def is_storage_failure(error: BaseException) -> bool:
    """An exception of the MinIO SDK or of the HTTP library under it."""
    module = type(error).__module__
    return module.startswith(("minio", "urllib3")) or isinstance(error, ConnectionError)


def explain(error: BaseException, action: str) -> str:
    """One line: what failed while doing `action`, and the fix. Never a secret: S3 errors carry none."""
    code = str(getattr(error, "code", "") or "")
    if code in CREDENTIAL_CODES:
        return (
            f"MinIO refused the credentials while {action} (S3 error {code}): MINIO_ROOT_USER / "
            "MINIO_ROOT_PASSWORD in .env are not the ones MinIO runs with. "
            "Fix: run `invoke up`, which applies .env to the containers, then retry."
        )
    if code == "NoSuchBucket":
        bucket = getattr(error, "bucket_name", None) or "MLFLOW_BUCKET"
        return (
            f"MinIO has no bucket {bucket} (MLFLOW_BUCKET) while {action}. "
            "Fix: run `invoke seed` (or `invoke up`) to create it, then retry."
        )
    if code:
        message = str(getattr(error, "message", "") or "").splitlines()[0:1]
        detail = f": {message[0]}" if message else ""
        return (
            f"MinIO answered {code} while {action}{detail}. "
            "Fix: `invoke logs --service minio` shows why; `invoke status` whether it is healthy."
        )
    return (
        f"MinIO did not answer while {action} ({type(error).__name__}: connection refused or reset). "
        "Fix: run `invoke up` (or `invoke status` to see why MinIO is down), then retry."
    )


@contextmanager
def minio_errors(action: str) -> Iterator[None]:
    """Turn MinIO SDK and connection errors raised inside into a `StorageError` about `action`."""
    try:
        yield
    except TrackstackError:
        raise
    except Exception as error:
        if not is_storage_failure(error):
            raise
        raise StorageError(explain(error, action)) from None


def minio_client(settings: Settings, endpoint: str | None = None) -> Any:
    """An S3 client for the published MinIO API, or `endpoint` (host:port); imported lazily: `invoke --list`
    stays fast."""
    from minio import Minio

    return Minio(
        endpoint or f"{settings.host}:{settings.ports['MINIO_API_PORT']}",
        access_key=settings.minio_root_user,
        secret_key=settings.minio_root_password.get_secret_value(),
        secure=False,
    )


class MinioBucket:
    """The stack's bucket through the MinIO SDK (the `Bucket` a backup and a restore use), at `endpoint`:
    MinIO's published API on Compose, a port-forward of its Service on Kubernetes."""

    def __init__(self, settings: Settings, endpoint: str | None = None) -> None:
        self.name = settings.mlflow_bucket
        self.client = minio_client(settings, endpoint)

    def listing(self) -> dict[str, str]:
        """Every object's key and ETag; empty when the bucket does not exist."""
        with minio_errors(f"listing the objects of bucket {self.name}"):
            if not self.client.bucket_exists(self.name):
                return {}
            return {obj.object_name: obj.etag for obj in self.client.list_objects(self.name, recursive=True)}

    def sizes(self) -> dict[str, int]:
        """Every object's key and size in bytes; empty when the bucket does not exist."""
        with minio_errors(f"listing the objects of bucket {self.name}"):
            if not self.client.bucket_exists(self.name):
                return {}
            return {obj.object_name: int(obj.size or 0) for obj in self.client.list_objects(self.name, recursive=True)}

    def ensure(self) -> None:
        with minio_errors(f"creating bucket {self.name}"):
            if not self.client.bucket_exists(self.name):
                self.client.make_bucket(self.name)

    def download(self, key: str, path: str) -> None:
        with minio_errors(f"copying {key} out of bucket {self.name}"):
            self.client.fget_object(self.name, key, path)

    def upload(self, key: str, path: str) -> None:
        with minio_errors(f"uploading {key} into bucket {self.name}"):
            self.client.fput_object(self.name, key, path)

    def remove(self, key: str) -> None:
        with minio_errors(f"removing {key} from bucket {self.name}"):
            self.client.remove_object(self.name, key)
