"""Sync the DAG folder to an S3 or GCS bucket, safely.

Order matters, because Airflow reads the bucket while we write it: upload new and changed files
first (supporting files before DAG files, so a new DAG finds its helpers), then delete the files
that are gone (DAG files before their helpers). A failure midway therefore never removes a DAG that
was working: at worst some files are already new. Each call is retried on transient errors
(connection errors, timeouts, HTTP 408/429/5xx, throttling) with exponential backoff; the SDKs' own
retries are turned off so ``retries`` in ``[tool.pytest-astro.deploy]`` is the one knob.

boto3 (``pytest-astro[s3]``) and google-cloud-storage (``pytest-astro[gcs]``) are imported only
here, only when a sync runs. Endpoints follow the SDKs' variables (``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``), credentials their usual chains.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_astro.deploy.targets import DeployError

_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "RequestTimeoutException",
                    "InternalError", "ServiceUnavailable", "RequestLimitExceeded",
                    "TooManyRequests"}


def split_url(url: str) -> tuple[str, str, str]:
    """``s3://bucket/a/b`` -> ("s3", "bucket", "a/b/")."""
    scheme, rest = url.split("://", 1)
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return scheme, bucket, (prefix + "/" if prefix else "")


class Store(Protocol):
    def list(self, prefix: str) -> dict[str, str | None]: ...  # key -> md5 hex (None: unknown)
    def upload(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...


class S3Store:
    def __init__(self, bucket: str):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise DeployError("an s3:// target needs boto3: pip install "
                              "'pytest-astro[s3]'") from None
        self.bucket = bucket
        self.client = boto3.client("s3",
                                   config=Config(retries={"total_max_attempts": 1},
                                                 connect_timeout=10,
                                                 read_timeout=60))

    def list(self, prefix: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=prefix):
            for obj in page.get("Contents", []):
                etag = obj.get("ETag", "").strip('"')
                # multipart: not an md5
                out[obj["Key"]] = etag if len(etag) == 32 and "-" not in etag else None
        return out

    def upload(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                               ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode())

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class GCSStore:
    def __init__(self, bucket: str):
        try:
            from google.cloud import storage
        except ImportError:
            raise DeployError("a gs:// target needs google-cloud-storage: pip install "
                              "'pytest-astro[gcs]'") from None
        self.client = storage.Client()
        self.bucket = self.client.bucket(bucket)

    def list(self, prefix: str) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for blob in self.client.list_blobs(self.bucket, prefix=prefix, retry=None):
            try:
                out[blob.name] = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
            except (binascii.Error, ValueError):
                out[blob.name] = None
        return out

    def upload(self, key: str, data: bytes) -> None:
        self.bucket.blob(key).upload_from_string(data, retry=None)

    def delete(self, key: str) -> None:
        self.bucket.blob(key).delete(retry=None)


def open_store(url: str) -> Store:
    scheme, bucket, _ = split_url(url)
    return S3Store(bucket) if scheme == "s3" else GCSStore(bucket)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the network or the service hiccupped, not a wrong bucket or a missing
    right."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, DeployError)):
        return False
    status = None
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        error = response.get("Error", {})
        if error.get("Code") in _TRANSIENT_CODES:
            return True
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    elif response is not None:
        status = getattr(response, "status_code", None)
    if status is None and isinstance(getattr(exc, "code", None), int):  # google.api_core
        status = exc.code  # type: ignore[attr-defined]
    if isinstance(status, int):
        return status in (408, 429) or status >= 500
    names = " ".join(cls.__name__ for cls in type(exc).__mro__)
    return isinstance(exc, (ConnectionError,
                            TimeoutError)) or "Connection" in names or "Timeout" in names


def with_retries(action: Callable[[], object], what: str, retries: int, echo: Callable[[str], None],
                 delay: float = 0.5, max_delay: float = 10.0) -> None:
    for attempt in range(retries + 1):
        try:
            action()
            return
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised as DeployError
            transient = is_transient(exc)
            if not transient or attempt == retries:
                kind = "still failing after {} retries".format(retries) if transient else "failed"
                raise DeployError(f"{what} {kind}: {type(exc).__name__}: {exc}") from None
            wait = min(max_delay, delay * 2**attempt)
            echo(f"  {what}: {type(exc).__name__} (transient), retry {attempt + 1}/{retries} in "
                 f"{wait:.1f}s")
            time.sleep(wait)


@dataclass
class SyncPlan:
    # (key, local file), in upload order
    uploads: list[tuple[str, Path]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # keys, in delete order
    unchanged: int = 0
    # keys done so far (for an interrupted sync's record)
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def md5_hex(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def is_bucket_root(url: str) -> bool:
    return not split_url(url)[2]


def read_checked(path: Path, expected: str | None) -> bytes:
    """``path``'s bytes, read once; DeployError when they are not the ones the plan hashed."""
    data = path.read_bytes()
    if expected is not None and "sha256:" + hashlib.sha256(data).hexdigest() != expected:
        raise DeployError(f"{path} changed after it was checked (its content is not the plan's); "
                          "nothing more is uploaded: run `pytest-astro deploy check` again")
    return data


def plan_sync(local: dict[str, Path], remote: dict[str, str | None], prefix: str,
              is_dag: Callable[[Path], bool]) -> SyncPlan:
    """``local``: relative path -> file; ``remote``: key -> md5. Supporting files go up first, DAGs
    last."""
    plan = SyncPlan()
    for rel, path in sorted(local.items(), key=lambda kv: (is_dag(kv[1]), kv[0])):
        key = prefix + rel
        if key in remote and remote[key] == md5_hex(path):
            plan.unchanged += 1
        else:
            plan.uploads.append((key, path))
    wanted = {prefix + rel for rel in local}
    gone = [k for k in remote if k not in wanted and not k.endswith("/")]
    # a removed DAG first, the helpers it imported after it
    plan.deletes = sorted(gone, key=lambda k: (not k.endswith(".py") or "/" in k[len(prefix):], k))
    return plan


def sync(url: str, files: Iterable[Path], dags_path: Path, is_dag: Callable[[Path], bool],
         echo: Callable[[str], None], retries: int = 5, dry_run: bool = False,
         store: Store | None = None,
         hashes: dict[Path, str] | None = None, plan: SyncPlan | None = None) -> SyncPlan:
    """Make the bucket prefix of ``url`` hold exactly ``files`` (under ``dags_path``). ``hashes``:
    the content each file must have (read once, checked, uploaded); ``plan`` is filled as the sync
    goes, so a caller interrupted midway knows what was done."""
    _, _, prefix = split_url(url)
    store = store or open_store(url)
    hashes = hashes or {}
    local = {p.relative_to(dags_path).as_posix(): p for p in files if p.is_file()}
    remote: dict[str, str | None] = {}

    def listing() -> None:
        remote.update(store.list(prefix))

    with_retries(listing, f"listing {url}", retries, echo)
    computed = plan_sync(local, remote, prefix, is_dag)
    plan = plan or SyncPlan()
    plan.uploads, plan.deletes, plan.unchanged = (computed.uploads, computed.deletes,
                                                  computed.unchanged)
    base = url.split("://", 1)[0] + "://" + url.split("://", 1)[1].split("/", 1)[0] + "/"
    echo(f"bucket sync {url}: {len(plan.uploads)} to upload, {len(plan.deletes)} to delete, "
         f"{plan.unchanged} unchanged")
    if dry_run:
        for key, _ in plan.uploads:
            echo(f"  would upload {base}{key}")
        for key in plan.deletes:
            echo(f"  would delete {base}{key}")
        return plan
    for key, path in plan.uploads:
        echo(f"  upload {base}{key}")
        data = read_checked(path, hashes.get(path))
        with_retries(lambda key=key, data=data: store.upload(key, data), f"upload of {base}{key}",
                     retries, echo)
        plan.uploaded.append(key)
    for key in plan.deletes:
        echo(f"  delete {base}{key}")
        with_retries(lambda key=key: store.delete(key), f"delete of {base}{key}", retries, echo)
        plan.deleted.append(key)
    return plan
