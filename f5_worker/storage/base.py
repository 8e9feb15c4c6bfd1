"""The one small interface both storage backends implement, over ``/``-separated keys."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

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
