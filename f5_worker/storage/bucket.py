"""Storage in an S3-compatible bucket through boto3: voices shared by every worker, and result links.

Every call has a total deadline (``BUCKET_TIMEOUT_S``, 30 s): connecting, sending, waiting for the
answer and botocore's retries together. botocore's own timeouts apply per attempt and per socket
read, so a server that is stopped but still accepts connections (its kernel completes the handshake)
would hold a job for attempts x read timeout; the call runs in a thread of its own instead, and the
job stops waiting for it at the deadline. The thread ends by itself at botocore's timeouts, which are
capped just past the deadline (``TIMEOUT_MARGIN_S``): capped at the deadline itself, botocore's timeout
and the wait for the deadline would race, and on a loaded machine a frozen bucket's error would name
either. ``health``'s check has a deadline of ``CHECK_TIMEOUT_S``.

Those threads are daemon threads, not a ``ThreadPoolExecutor``'s: concurrent.futures joins its threads when
the interpreter exits, so a call that a job had already given up on held the worker's exit (after RunPod's
SIGTERM) until botocore's timeouts, attempts x timeouts past its deadline, beyond RunPod's grace period. A
call matters only while its caller waits for it (an upload whose job failed at its deadline is owed to
no one), and a caller still waiting keeps the process alive by itself.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from f5_worker.config import BucketSettings
from f5_worker.storage.base import NotFound, ObjectInfo, Storage, StorageError, check_key

CHECK_TIMEOUT_S = 2.0  # health's bucket check (a head request, a probe written and deleted), in all
TIMEOUT_MARGIN_S = 1.0  # botocore's own timeouts end this long after the call's deadline, never before it
# Bucket calls in flight at once, across jobs; more wait their turn within their own deadline.
MAX_CALLS = 32
_CALL_SLOTS = threading.BoundedSemaphore(MAX_CALLS)
T = TypeVar("T")


def _start_call(fn: Callable[[], T], wait_s: float) -> concurrent.futures.Future[T]:
    """``fn()`` in a daemon thread of its own once one of ``MAX_CALLS`` slots is free, waited for at most
    ``wait_s``; a call cancelled before it has a slot never runs."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not _CALL_SLOTS.acquire(timeout=wait_s):
            return  # its caller has given up by now
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - the caller gets it as it is, as from a pool
                future.set_exception(exc)
            else:
                future.set_result(result)
        finally:
            _CALL_SLOTS.release()

    threading.Thread(target=run, name="bucket", daemon=True).start()
    return future


class BucketStorage(Storage):
    """An S3-compatible bucket via boto3 (AWS, Backblaze B2, Cloudflare R2, MinIO, SeaweedFS...).

    ``put_if_absent`` is a conditional PUT (``If-None-Match: *``), which S3 and
    most compatible services honour atomically.
    """

    kind = "bucket"

    def __init__(self, settings: BucketSettings):
        self.settings = settings
        self.bucket = settings.name
        deadline = settings.call_timeout_s
        cap = deadline + TIMEOUT_MARGIN_S
        self._client = self._make_client(settings.max_attempts, min(settings.connect_timeout_s, cap),
                                         min(settings.read_timeout_s, cap))
        # Health checks answer fast: one attempt, short timeouts.
        probe_cap = CHECK_TIMEOUT_S + TIMEOUT_MARGIN_S
        self._probe = self._make_client(1, min(settings.connect_timeout_s, probe_cap),
                                        min(settings.read_timeout_s, probe_cap))
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

    def _call(self, action: str, fn: Callable[[], T], deadline_s: float | None = None) -> T:
        """``fn()`` (one bucket call with its retries) in a bucket thread, waited for at most ``deadline_s``
        (``BUCKET_TIMEOUT_S``): past it the call fails with a StorageError, while its thread runs on to
        botocore's own timeouts, or until the process exits. botocore's exceptions pass through as they are."""
        deadline_s = self.settings.call_timeout_s if deadline_s is None else deadline_s
        wait_s = max(deadline_s, 0.001)
        future = _start_call(fn, wait_s)
        try:
            return future.result(timeout=wait_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # not started yet (all MAX_CALLS slots busy): it never will be
            raise StorageError(f"{action} failed on {self.location} (no answer within {deadline_s:g} s)") from None

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
            check_key(key)
            self._call("upload", lambda: self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "upload") from None

    def put_if_absent(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        check_key(key)
        if not self._conditional_put:
            return self._put_if_absent_unconditional(key, data, content_type)
        try:
            self._call("upload", lambda: self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*"))
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
            check_key(key)
            self._call("lookup", lambda: self._client.head_object(Bucket=self.bucket, Key=key))
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
            check_key(key)
            return self._call("download", lambda: self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if self._status(exc) == 404 or exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise NotFound(key) from None
            raise self._fail(exc, "download") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "download") from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            check_key(key)
            self._call("delete", lambda: self._client.delete_object(Bucket=self.bucket, Key=key))
        except (BotoCoreError, ClientError) as exc:
            if self._status(exc) == 404:
                return
            raise self._fail(exc, "delete") from None

    def list(self, prefix: str) -> list[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        def listing() -> list[ObjectInfo]:  # every page, within one deadline
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [ObjectInfo(obj["Key"], int(obj["Size"]), obj["LastModified"])
                    for page in pages for obj in page.get("Contents", [])]

        try:
            out = self._call("listing", listing)
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
        ends = time.monotonic() + CHECK_TIMEOUT_S
        try:
            self._call("bucket check", lambda: self._probe.head_bucket(Bucket=self.bucket), CHECK_TIMEOUT_S)
            status["reachable"] = True
        except StorageError as exc:  # no answer in time
            status["error"] = str(exc)
            return status
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
        def write_probe() -> None:
            probe = f"_health/probe-{uuid.uuid4().hex}"
            self._probe.put_object(Bucket=self.bucket, Key=probe, Body=b"ok", ContentType="text/plain")
            self._probe.delete_object(Bucket=self.bucket, Key=probe)

        try:
            self._call("test write", write_probe, ends - time.monotonic())
            status["writable"] = True
        except StorageError as exc:
            status["error"] = str(exc)
        except (BotoCoreError, ClientError) as exc:
            status["error"] = str(self._fail(exc, "test write"))
        return status
