"""Storage in a directory: the network volume's ``f5-worker/``, or ``./data`` without one.

Writes are atomic (a temporary file, fsynced, then renamed), so a worker killed
mid-write leaves the old object or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import filelock

from f5_worker.storage.base import NotFound, ObjectInfo, Storage, StorageError, check_key


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
