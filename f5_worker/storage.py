"""Where the worker keeps voices and results: a local directory or an S3-compatible bucket.

Both backends implement one small interface (``Storage``) over ``/``-separated
keys. The bucket is used when RunPod's ``BUCKET_ENDPOINT_URL``,
``BUCKET_ACCESS_KEY_ID`` and ``BUCKET_SECRET_ACCESS_KEY`` are set; otherwise the
network volume (``<NETWORK_VOLUME_PATH>/f5-worker``) or ``./data`` is used.
Results can only be handed out as links from a bucket (presigned GET URLs).
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import filelock

from f5_worker.settings import network_volume_from_env

DEFAULT_URL_EXPIRY_S = 3600
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_.=+-]+")


class StorageError(Exception):
    """The backend failed (unreachable, refused, misconfigured); the message says which and why."""


class NotFound(StorageError):
    """The key does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """Keys are relative, ``/``-separated, with safe segments: no ``..``, no absolute paths."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or not _KEY_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


class Storage(ABC):
    """A flat key -> bytes store; the voice store and result delivery are built on it."""

    kind: str

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write atomically: readers see the old object or the new one, never a partial one."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Create ``key`` only if it does not exist; False when another writer got there first."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises ``NotFound``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a ``/``-terminated folder)."""

    @abstractmethod
    def url(self, key: str, expires_s: int) -> str:
        """A URL anyone can GET for ``expires_s`` seconds."""

    @abstractmethod
    def check(self) -> dict:
        """Probe reachability and writability; returns the status reported by ``health``."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Human-readable place, used in messages."""


class LocalStorage(Storage):
    """A directory tree (the network volume, or ``./data``).

    Writes go to a temporary file in the same directory and are renamed into
    place; ``put_if_absent`` uses ``link(2)``, which fails if the name exists,
    so exactly one of several concurrent creators wins, across processes and
    machines sharing the volume.
    """

    kind = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _write_temp(self, path: Path, data: bytes) -> Path:
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        for attempt in range(3):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                return tmp
            except FileNotFoundError:
                if attempt == 2:  # a concurrent delete kept removing the (empty) folder
                    raise StorageError(f"cannot write under {self.root}: folder keeps disappearing") from None
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"cannot write under {self.root}: {exc.strerror or exc}") from None
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # Some network filesystems lack hard links: fall back to a lock file.
            with filelock.FileLock(str(path) + ".lock", timeout=30):
                if path.exists():
                    return False
                os.replace(tmp, path)
                return True
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {path}: {exc.strerror or exc}") from None
        # Drop folders left empty, up to the root, so listings stay clean.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p]) if prefix else self.root
        if prefix:
            check_key(prefix.rstrip("/"))
        out = []
        if not base.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".") or name.endswith(".lock"):
                    continue  # temporary files of writes in progress, and lock files
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                key = full.relative_to(self.root).as_posix()
                out.append(ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return sorted(out, key=lambda o: o.key)

    def url(self, key: str, expires_s: int) -> str:
        raise StorageError("the local directory cannot hand out URLs; configure a bucket")

    def check(self) -> dict:
        status = {"backend": self.kind, "path": str(self.root), "writable": False, "error": None}
        try:
            probe = f"_health/probe-{uuid.uuid4().hex}"
            self.put(probe, b"ok")
            self.delete(probe)
            status["writable"] = True
        except (StorageError, OSError) as exc:
            status["error"] = str(exc)
        return status


@dataclass(frozen=True)
class BucketSettings:
    """RunPod's bucket variables, plus the few knobs an S3-compatible service may need."""

    endpoint_url: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    name: str
    region: str = "us-east-1"
    addressing_style: str = "path"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_attempts: int = 3


class BucketStorage(Storage):
    """An S3-compatible bucket via boto3 (AWS, Backblaze B2, Cloudflare R2, MinIO, SeaweedFS...).

    ``put_if_absent`` is a conditional PUT (``If-None-Match: *``), which S3 and
    most compatible services honour atomically.
    """

    kind = "bucket"

    def __init__(self, settings: BucketSettings):
        self.settings = settings
        self.bucket = settings.name
        self._client = self._make_client(settings.max_attempts, settings.connect_timeout_s, settings.read_timeout_s)
        # Health checks answer fast: one attempt, short timeouts.
        self._probe = self._make_client(1, min(settings.connect_timeout_s, 3.0), min(settings.read_timeout_s, 10.0))
        self._conditional_put = True

    def _make_client(self, attempts: int, connect_timeout_s: float, read_timeout_s: float):
        import boto3
        from botocore.config import Config

        s = self.settings
        return boto3.client(
            "s3",
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key_id,
            aws_secret_access_key=s.secret_access_key,
            region_name=s.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": s.addressing_style},
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"total_max_attempts": attempts, "mode": "standard"},  # "max_attempts" counts retries
                max_pool_connections=16,
            ),
        )

    @property
    def location(self) -> str:
        return f"bucket {self.bucket!r} at {self.settings.endpoint_url}"

    def _fail(self, exc: Exception, action: str) -> StorageError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = f"{code}: {err.get('Message') or 'no message'}"
        else:
            detail = str(exc).split("\n")[0] or type(exc).__name__
        return StorageError(f"{action} failed on {self.location} ({detail})")

    @staticmethod
    def _status(exc: Exception) -> int | None:
        response = getattr(exc, "response", None) or {}
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "upload") from None

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        if not self._conditional_put:
            return self._put_if_absent_unconditional(key, data, content_type)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*"
            )
            return True
        except ClientError as exc:
            status = self._status(exc)
            if status in (412, 409):  # 409: a concurrent conditional write is in progress
                return False
            if status == 501:  # the service ignores conditions: best effort from now on
                self._conditional_put = False
                return self._put_if_absent_unconditional(key, data, content_type)
            raise self._fail(exc, "upload") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "upload") from None

    def _put_if_absent_unconditional(self, key: str, data: bytes, content_type: str) -> bool:
        if self.exists(key):
            return False
        self.put(key, data, content_type)
        return True

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=check_key(key))
            return True
        except ClientError as exc:
            if self._status(exc) == 404:
                return False
            raise self._fail(exc, "lookup") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "lookup") from None

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()
        except ClientError as exc:
            if self._status(exc) == 404 or exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise NotFound(key) from None
            raise self._fail(exc, "download") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "download") from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except (BotoCoreError, ClientError) as exc:
            if self._status(exc) == 404:
                return
            raise self._fail(exc, "delete") from None

    def list(self, prefix: str) -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        out = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(obj["Key"], int(obj["Size"]), obj["LastModified"]))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "listing") from None
        return sorted(out, key=lambda o: o.key)

    def url(self, key: str, expires_s: int) -> str:
        # Signing is local: no request is made, so it cannot fail for an unreachable bucket.
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=int(expires_s)
        )

    def check(self) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        status = {
            "backend": self.kind,
            "endpoint": self.settings.endpoint_url,
            "bucket": self.bucket,
            "reachable": False,
            "writable": False,
            "error": None,
        }
        try:
            self._probe.head_bucket(Bucket=self.bucket)
            status["reachable"] = True
        except (BotoCoreError, ClientError) as exc:
            if self._status(exc) == 404:
                status["reachable"] = True
                status["error"] = f"bucket {self.bucket!r} does not exist at {self.settings.endpoint_url}"
            elif self._status(exc) in (401, 403):
                status["reachable"] = True
                status["error"] = f"access to bucket {self.bucket!r} denied (check BUCKET_ACCESS_KEY_ID/SECRET)"
            else:
                status["error"] = str(self._fail(exc, "bucket check"))
            return status
        try:
            probe = f"_health/probe-{uuid.uuid4().hex}"
            self._probe.put_object(Bucket=self.bucket, Key=probe, Body=b"ok", ContentType="text/plain")
            self._probe.delete_object(Bucket=self.bucket, Key=probe)
            status["writable"] = True
        except (BotoCoreError, ClientError) as exc:
            status["error"] = str(self._fail(exc, "test write"))
        return status


@dataclass(frozen=True)
class StorageSettings:
    """Storage-related environment, separate from the model settings so it can be tested alone."""

    local_root: Path
    volume_mounted: bool
    bucket: BucketSettings | None
    bucket_error: str | None
    url_expiry_s: int = DEFAULT_URL_EXPIRY_S

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, network_volume_path: Path | None = None
    ) -> StorageSettings:
        """Read the environment; ``network_volume_path`` overrides ``NETWORK_VOLUME_PATH`` (Settings has it)."""
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else default

        volume = Path(network_volume_path) if network_volume_path is not None else network_volume_from_env(env)
        mounted = volume is not None and volume.is_dir()
        local_root = volume / "f5-worker" if mounted else Path("data").resolve()

        problems: list[str] = []  # settings the bucket cannot be used with: it is disabled, and health says why

        def number(name: str, default: str, kind: type = float):
            raw = get(name, default)
            try:
                value = kind(raw)
            except ValueError:
                value = None
            if value is None or not 0 < value < float("inf"):
                problems.append(f"{name} must be a positive {'whole ' if kind is int else ''}number (got {raw!r})")
                return kind(default)
            return value

        expiry = number("URL_EXPIRY_S", str(DEFAULT_URL_EXPIRY_S), int)  # links to results in the bucket
        bucket, bucket_error = None, None
        endpoint = get("BUCKET_ENDPOINT_URL")
        key_id, secret = get("BUCKET_ACCESS_KEY_ID"), get("BUCKET_SECRET_ACCESS_KEY")
        if endpoint or key_id or secret:
            missing = [n for n, v in (("BUCKET_ENDPOINT_URL", endpoint), ("BUCKET_ACCESS_KEY_ID", key_id),
                                      ("BUCKET_SECRET_ACCESS_KEY", secret)) if not v]
            parts = urlsplit(endpoint or "")
            # A bucket may also be named by the endpoint's path (https://host/bucket).
            name = get("BUCKET_NAME") or parts.path.strip("/").split("/")[0] or None
            if missing:
                bucket_error = f"bucket disabled: {', '.join(missing)} not set"
            elif parts.scheme not in ("http", "https") or not parts.hostname:
                bucket_error = "bucket disabled: BUCKET_ENDPOINT_URL must be an http(s) URL"
            elif not name:
                bucket_error = "bucket disabled: BUCKET_NAME not set"
            else:
                region = get("BUCKET_REGION") or _region_from_host(parts.hostname) or "us-east-1"
                style = get("BUCKET_ADDRESSING_STYLE", "path").lower()
                if style not in ("path", "virtual", "auto"):
                    problems.append(f"BUCKET_ADDRESSING_STYLE must be path, virtual or auto (got {style!r})")
                bucket = BucketSettings(
                    endpoint_url=f"{parts.scheme}://{parts.netloc}",
                    access_key_id=key_id,
                    secret_access_key=secret,
                    name=name,
                    region=region,
                    addressing_style=style,
                    connect_timeout_s=number("BUCKET_CONNECT_TIMEOUT_S", "5"),
                    read_timeout_s=number("BUCKET_READ_TIMEOUT_S", "60"),
                    max_attempts=number("BUCKET_MAX_ATTEMPTS", "3", int),
                )
                if problems:
                    bucket, bucket_error = None, "bucket disabled: " + "; ".join(problems)
        return cls(local_root, mounted, bucket, bucket_error, url_expiry_s=expiry)


def _region_from_host(host: str) -> str | None:
    """``s3.us-west-004.backblazeb2.com`` -> ``us-west-004`` (SigV4 needs the right region)."""
    match = re.match(r"^(?:[^.]+\.)?s3[.-]([a-z]{2}(?:-[a-z]+)+-\d+)\.", host)
    return match.group(1) if match else None


class Stores:
    """The worker's storage: ``voices`` (bucket if configured, else local), ``bucket`` for results.

    The bucket is probed at start-up and whenever ``health`` asks; a bucket that
    is down stays configured (it may come back) and each operation fails
    clearly in the meantime.
    """

    def __init__(self, settings: StorageSettings):
        self.settings = settings
        self.local = LocalStorage(settings.local_root)
        self.bucket: BucketStorage | None = BucketStorage(settings.bucket) if settings.bucket else None
        self._lock = threading.Lock()
        self._bucket_status: dict | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, network_volume_path: Path | None = None) -> Stores:
        return cls(StorageSettings.from_env(env, network_volume_path=network_volume_path))

    @property
    def voices(self) -> Storage:
        return self.bucket if self.bucket is not None else self.local

    def check_bucket(self) -> dict | None:
        if self.bucket is None:
            return None
        started = time.monotonic()
        status = self.bucket.check()
        status["checked_in_s"] = round(time.monotonic() - started, 3)
        with self._lock:
            self._bucket_status = status
        return status

    def health(self, refresh: bool = True) -> dict:
        """What ``health`` reports: the voice store's backend, the bucket's state, the volume."""
        bucket = self.check_bucket() if refresh else self._bucket_status
        if bucket is None and self.settings.bucket_error:
            bucket = {"backend": "bucket", "configured": False, "error": self.settings.bucket_error}
        local = {"path": str(self.local.root), "volume_mounted": self.settings.volume_mounted}
        if self.bucket is None and refresh:  # the directory holds the voices: say whether it can
            check = self.local.check()
            local.update(writable=check["writable"], error=check["error"])
        return {
            "voices": self.voices.kind,
            "results": "bucket" if self.bucket is not None else "inline only",
            "bucket": bucket,
            "local": local,
            "url_expiry_s": self.settings.url_expiry_s,
        }
