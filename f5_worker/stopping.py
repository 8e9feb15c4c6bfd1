"""Jobs that RunPod stops (``/cancel``, the endpoint's execution timeout) stop here too, as do those of the HTTP
server whose client goes away or that a stopping server cuts; a stopped job's error says which (StopFlag).

runpod-python stops a job by cancelling its asyncio task. Our jobs run in threads
(``Worker.handle_async``), which a cancelled task cannot interrupt: without more,
a stopped job went on sampling, aligning and uploading to the end, holding the GPU
and its batch-mates, while RunPod, which frees the job's slot at once, sent the
worker another job on top. So the task raises the job's stop flag, which the job's
thread sees through a context variable (``asyncio.to_thread`` copies the context),
and the work checks it between stages; the sampler checks it before a batch and at
every sampling step. Work that can last long within one stage looks at it as it goes:
a download (its sockets are shut down), decoding (per block), and alignment (a sphinx
process decoding the job's audio is killed; dtw and CTC look between their steps), so
a stopped ``align`` of half an hour of audio ends within moments, not at its end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.1  # how often a job waiting for the sampler looks at its flag
# why each front door stops a job, as a stopped job's error and log line say it
QUEUE_STOP = "RunPod cancelled the job or its time ran out"
HTTP_STOP = "its client went away, or the server is stopping"

class StopFlag(threading.Event):
    """A job's stop flag, and why its front door raises it (``cause``)."""

    def __init__(self, cause: str = QUEUE_STOP):
        super().__init__()
        self.cause = cause


_flag: ContextVar[StopFlag | None] = ContextVar("f5_worker_stop_flag", default=None)


class JobStopped(Exception):
    """The job was stopped by its front door; its result would be thrown away, so its work ends here. The
    message says why, as this job's flag does (a queue's when made outside any job, as by the sampler)."""

    def __init__(self, stage: str):
        self.stage = stage
        flag = _flag.get()
        self.cause = flag.cause if flag is not None else QUEUE_STOP
        super().__init__(f"stopped: {self.cause} ({stage})")


@contextmanager
def stop_flag(cause: str = QUEUE_STOP) -> Iterator[StopFlag]:
    """A new flag for the job run in this context (and in threads started from it with its context)."""
    flag = StopFlag(cause)
    token = _flag.set(flag)
    try:
        yield flag
    finally:
        _flag.reset(token)


def flagged_context(cause: str = QUEUE_STOP) -> tuple[contextvars.Context, StopFlag]:
    """A context holding a new flag, for a job whose steps run one by one in threads (a streamed job):
    each step is run with ``context.run``, so its thread sees the flag the job's task raises."""
    flag = StopFlag(cause)
    context = contextvars.copy_context()
    context.run(_flag.set, flag)
    return context, flag


def current_flag() -> StopFlag | None:
    """This job's flag; None outside a stoppable job (local modes, tests, the benchmark's direct calls)."""
    return _flag.get()


def is_stopped() -> bool:
    """Whether this job has been stopped, for work that says where it was (``JobStopped("during ...")``)."""
    flag = _flag.get()
    return flag is not None and flag.is_set()


def check(stage: str) -> None:
    """Raise JobStopped if this job has been stopped; ``stage`` says what would have come next."""
    flag = _flag.get()
    if flag is not None and flag.is_set():
        raise JobStopped(f"before {stage}")


def result_unless_stopped(future: concurrent.futures.Future[T], stage: str, *, shared: bool = False) -> T:
    """``future.result()``, or JobStopped if the job is stopped while the future has not started.

    A started future (a sampling batch under way) is left to finish or to stop itself:
    its batch-mates may still want it. A ``shared`` future (a model load other jobs wait for too) is
    never cancelled: the stopped job only stops waiting for it.
    """
    flag = _flag.get()
    if flag is None:
        return future.result()
    while True:
        # wait(), not result(timeout=...): a TimeoutError raised by the work itself must not read as "not yet"
        done, _ = concurrent.futures.wait([future], timeout=POLL_SECONDS)
        if done:
            try:
                return future.result()
            except concurrent.futures.CancelledError:  # the sampler found it stopped first (SampleRequest.claim)
                raise JobStopped(f"before {stage}") from None
            except JobStopped as exc:  # the sampler's, made outside the job: said again with this job's cause
                raise JobStopped(exc.stage) from None
        if flag.is_set() and (shared or future.cancel()):
            raise JobStopped(f"before {stage}") from None


async def made_in_thread(make: Callable[[], Iterable[T]], context: contextvars.Context, flag: StopFlag,
                         on_stop: Callable[[], None],
                         executor: concurrent.futures.Executor | None = None) -> AsyncIterator[T]:
    """What ``make()`` yields, made in a thread run in ``context`` (holding ``flag``, from flagged_context), as
    each is made: for a front door that sends a job's items as they come (RunPod's stream, the HTTP server).
    The thread is one of ``executor``'s (None: the event loop's default pool).

    The thread makes them without waiting for the one before to be sent, so making the next piece overlaps
    sending this one. Cancelled while it waits for the next item, or closed before the last, it raises the
    flag and tells ``on_stop``, and the thread stops at its next check (at the latest at the next sampling
    step): no later piece is made. A front door that may be stopped outside this generator (while it sends
    an item) raises the flag itself, or closes it. An exception ``make`` raises comes out here after the
    items made before it.
    """
    loop = asyncio.get_running_loop()
    made: asyncio.Queue[tuple[T] | None] = asyncio.Queue()

    def hand_over(item: tuple[T] | None) -> None:
        try:
            loop.call_soon_threadsafe(made.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is left to read it
            pass

    def produce() -> None:
        try:
            for item in make():
                hand_over((item,))
        finally:
            hand_over(None)

    producer = loop.run_in_executor(executor, context.run, produce)
    try:
        while (item := await made.get()) is not None:
            yield item[0]
        await producer
    finally:
        if not producer.done() and not flag.is_set():  # cancelled or closed while the job goes on
            on_stop()
            flag.set()
        # what the thread raises once nobody reads any more ends the job; it is not an unread exception
        producer.add_done_callback(lambda f: f.cancelled() or f.exception())
