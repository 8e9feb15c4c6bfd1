"""The worker's storage as a whole: where voices go, whether results can go to a bucket, its health."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from f5_worker.config import StorageSettings
from f5_worker.storage.base import Storage
from f5_worker.storage.bucket import BucketStorage
from f5_worker.storage.local import LocalStorage


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
        """``config.StorageSettings.from_env``'s reading of the environment (or of ``env``)."""
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
