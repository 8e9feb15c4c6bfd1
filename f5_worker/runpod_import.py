"""``import runpod``, made safe and quick for a worker process.

Three things about importing runpod-python (1.10.0, the version uv.lock installs) need handling; each
reaches into runpod's internals (docs/architecture.md, "Where the worker depends on a library's
internals", says what 1.12 changes):

* **Its record of jobs in progress.** runpod keeps the jobs a worker has in
  progress in ``.runpod_jobs.pkl`` in the directory that is current when it is
  imported, so that its heartbeat process can report them, and it *loads* that
  file when it starts. A worker killed with jobs in progress (out of memory,
  SIGKILL, a CUDA fault) leaves the file behind; restarted in the same container
  (same ``/app``), it counts those jobs as its own forever: with as many of them
  as ``MAX_CONCURRENCY``, it boots, sends heartbeats that claim them, and never
  takes a job again (measured: 40 s, no job taken, tests/test_runpod_worker.py).
  Two workers started in one directory would share the file too. A process that
  has just started has no job in progress, so any such file is stale:
  ``private_job_state()`` gives runpod's tracker a new directory of this
  process's own, which its heartbeat process (forked) shares.
* **Its CPU query.** See ``quick_cpuinfo``.
* **Its log of results.** In its local test mode runpod logs every job's whole
  result ("Job result: {...}", and at DEBUG the handler's output), audio included:
  thousands of characters of base64 on a person's terminal. ``quiet_base64_logs``
  shortens every run of base64 in its log lines to a note of its length; nothing
  else in them changes, errors included.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from f5_worker.config import lean_imports_enabled, runpod_log_level


@contextmanager
def private_job_state() -> Iterator[str]:
    """Run ``import runpod`` inside this; yields the directory its job tracker will use."""
    state_dir = tempfile.mkdtemp(prefix="runpod-jobs-")
    atexit.register(shutil.rmtree, state_dir, ignore_errors=True)
    cwd = os.getcwd()
    os.chdir(state_dir)  # runpod's JobsProgress takes its state directory from the cwd at import
    try:
        yield state_dir
    finally:
        os.chdir(cwd)


def proc_cpuinfo_brand(path: str = "/proc/cpuinfo") -> str | None:
    """The CPU's "model name" from /proc/cpuinfo: where py-cpuinfo looks first on Linux."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        return None
    return None


@contextmanager
def quick_cpuinfo() -> Iterator[None]:
    """While the block runs, ``cpuinfo.get_cpu_info()`` reads /proc/cpuinfo in-process.

    ``import runpod`` calls py-cpuinfo's ``get_cpu_info()`` at module level
    (``rp_debugger.PROCESSOR``, shown only in runpod's debugger output). py-cpuinfo
    runs itself in a new interpreter for that, which forks once more to query CPUID:
    about 1.1 s of every cold start, and of every spawned alignment process. The
    brand it returns on Linux comes from /proc/cpuinfo's "model name", which is what
    the stand-in returns; where that line is missing (non-x86) the real function runs.
    Wrap ``import runpod`` in it; a no-op when F5_WORKER_LEAN_IMPORTS=0.
    """
    if not lean_imports_enabled():
        yield
        return
    try:
        import cpuinfo
    except ImportError:
        yield
        return
    real = cpuinfo.get_cpu_info

    def get_cpu_info() -> dict:
        brand = proc_cpuinfo_brand()
        return {"brand_raw": brand} if brand else real()

    cpuinfo.get_cpu_info = get_cpu_info
    try:
        yield
    finally:
        if cpuinfo.get_cpu_info is get_cpu_info:
            cpuinfo.get_cpu_info = real


BASE64_RUN_CHARS = 120  # a run of base64 this long or longer in a log line is shortened
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/]{{{BASE64_RUN_CHARS},}}={{0,2}}")


def elide_base64(message: str) -> str:
    """``message`` with every run of base64 (audio, files) replaced by ``<N characters of base64>``."""
    return _BASE64_RUN.sub(lambda m: f"<{len(m.group())} characters of base64>", message)


def quiet_base64_logs(runpod_module: ModuleType) -> None:
    """Make runpod's logger shorten base64 in every message it prints (see the module's docstring)."""
    logger_class = runpod_module.serverless.modules.rp_logger.RunPodLogger
    real_log = logger_class.log
    if getattr(real_log, "elides_base64", False):
        return

    def log(self, message, message_level="INFO", job_id=None):
        return real_log(self, elide_base64(str(message)), message_level, job_id)

    log.elides_base64 = True
    logger_class.log = log


def import_runpod() -> ModuleType:
    """runpod, imported with its log level defaulted, its job record private, its CPU query quick and its
    log free of base64."""
    runpod_log_level()  # runpod reads RUNPOD_LOG_LEVEL itself when imported
    with quick_cpuinfo(), private_job_state():
        import runpod
    quiet_base64_logs(runpod)
    return runpod
