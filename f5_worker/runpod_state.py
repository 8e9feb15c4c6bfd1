"""runpod-python's record of jobs in progress, kept private to this worker process.

runpod-python (1.10) keeps the jobs a worker has in progress in ``.runpod_jobs.pkl``
in the directory that is current when it is imported, so that its heartbeat
process can report them, and it *loads* that file when it starts. A worker
killed with jobs in progress (out of memory, SIGKILL, a CUDA fault) leaves the
file behind; restarted in the same container (same ``/app``), it counts those
jobs as its own forever: with as many of them as ``MAX_CONCURRENCY``, it boots,
sends heartbeats that claim them, and never takes a job again (measured: 40 s,
no job taken, tests/test_runpod_worker.py). Two workers started in one directory
would share the file too.

A process that has just started has no job in progress, so any such file is
stale. Importing runpod inside ``private_job_state()`` gives its tracker a new
directory of this process's own, which its heartbeat process (forked) shares.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator


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
