"""Progress of a long job while it runs: runpod's ``progress_update``, which RunPod shows on ``/status``.

The job's thread calls ``report`` at the start of each stage; the handler sets a reporter per job
(a context variable, carried into the job's thread as the stop flag is) only where RunPod's job API is
there to receive it. In runpod's local modes, the tests' direct calls and the benchmark nothing is sent.
Short jobs report nothing: they end before anyone would read it, and every report costs a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)

MIN_AUDIO_SECONDS = 20.0  # jobs planned to give less audio than this report no progress

Reporter = Callable[[dict], None]

_reporter: ContextVar[Reporter | None] = ContextVar("f5_worker_progress", default=None)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Reports made in this context (and in threads started from it with its context) go to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def report(progress: dict) -> None:
    """Send ``progress`` for this job, if anyone receives it; a failure to send never fails the job."""
    reporter = _reporter.get()
    if reporter is None:
        return
    try:
        reporter(progress)
    except Exception:  # noqa: BLE001 - progress is a courtesy; the job goes on
        log.warning("could not report progress", exc_info=True)
