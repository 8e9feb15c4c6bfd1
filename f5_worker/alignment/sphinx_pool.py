"""pocketsphinx alignment in worker processes (setting ``ALIGN_PROCESSES``).

pocketsphinx holds the interpreter lock for a whole decode. Aligned inside the worker process, a
30-minute recording kept every other thread waiting for about a minute: ``health``, the other jobs,
and runpod's heartbeat and job loop, which run in the same process; and a job RunPod stopped could
not end before its decode did. Here each alignment runs in a process of its own, and the job's thread
waits for its answer on a pipe, which leaves the lock free; so alignments of concurrent jobs also run in
parallel on other cores, and on a GPU worker the sampler keeps the lock for its kernel launches
(docs/performance.md).

A job stopped while its process decodes has that process killed (the decode would otherwise hold the
process for up to minutes, for a result nobody wants) and a new one started in its place, in the
background; the job ends at once. A job waiting for a free process stops waiting. A process that dies
is replaced and the alignment retried once, so one bad decode cannot disable timings for good.

Processes are started with ``spawn`` (never ``fork``: the parent holds CUDA state and threads), all at
worker start rather than inside the first jobs. ``ProcessPoolExecutor`` is not used: it cannot end the
one task of a stopped job without breaking every other job's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from typing import Any

import numpy as np

from f5_worker import stopping
from f5_worker.alignment.sphinx import SAMPLE_RATE, SphinxAligner
from f5_worker.audio import resample
from f5_worker.timed_text import Alignment

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting job looks at its stop flag
START_TIMEOUT_S = 120.0  # a new process has this long to build its decoders
START_ATTEMPTS = 3  # a replacement that fails to start is tried again, this many times in all


def _serve(conn, onsets: bool = True) -> None:
    """A pool process: build the aligner, say so (its pid), then align each task sent until told to end."""
    aligner = SphinxAligner(onsets=onsets)
    conn.send(os.getpid())
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the worker has gone
            return
        if task is None:
            return
        audio, sample_rate, text, language = task
        try:
            answer: tuple[bool, Any] = (True, aligner.align(audio, sample_rate, text, language=language))
        except Exception as exc:  # noqa: BLE001 - the job's thread raises it; align_audio then estimates
            answer = (False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle: its text goes instead
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def auto_processes(device: str) -> int:
    """One on CPU, where model compute takes the cores anyway; else up to 8, leaving 2 cores.

    Never 0 (alignment inside the worker process): a long decode would hold up the whole worker.
    """
    if not device.startswith("cuda"):
        return 1
    return max(1, min(8, (os.cpu_count() or 1) - 2))


class _ProcessDied(Exception):
    """The process aligning a job ended without answering."""


class _AlignProcess:
    """One pool process and the pipe to it."""

    def __init__(self, context, onsets: bool = True):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, onsets), name="sphinx-align", daemon=True)
        self.process.start()
        child.close()  # the parent keeps only its own end: a dead child then reads as end of file

    def wait_started(self) -> None:
        if not self.conn.poll(START_TIMEOUT_S):
            raise RuntimeError(f"a sphinx alignment process did not start within {START_TIMEOUT_S:g} s")
        self.conn.recv()  # its pid; EOFError when it died starting

    def end(self, *, kill: bool) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class SphinxProcessPool:
    """Same interface as ``SphinxAligner``; each call runs in one of ``processes`` worker processes."""

    name = "sphinx"

    def __init__(self, processes: int, *, onsets: bool = True):
        self.processes = max(1, processes)
        self.onsets = onsets  # ``SphinxAligner``'s, in every process
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.SimpleQueue[_AlignProcess] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._members: set[_AlignProcess] = set()  # started or starting, not yet ended
        self._starting = 0
        self._closed = False
        started = [self._spawn() for _ in range(self.processes)]  # all at once, then wait for each
        for member in started:
            member.wait_started()
            self._idle.put(member)
        log.info("sphinx alignment in %d processes (%d started)", self.processes, len(self.pids()))

    def _spawn(self) -> _AlignProcess:
        member = _AlignProcess(self._context, self.onsets)
        with self._lock:
            self._members.add(member)
        return member

    def pids(self) -> set[int]:
        with self._lock:
            return {m.process.pid for m in self._members if m.process.is_alive()}

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            # here, where torch is loaded anyway, with the resampler the process would use; importing torch
            # there took 3 s on each process's first job. Cut to whole samples within the caller's duration.
            keep = len(audio) * SAMPLE_RATE // sample_rate
            audio, sample_rate = resample(audio, sample_rate, SAMPLE_RATE)[:keep], SAMPLE_RATE
        task = (audio, sample_rate, text, language)
        stopping.check("alignment")  # stopped already: no process needs killing
        for attempt in (1, 2):
            member = self._take()
            try:
                ok, value = self._run(member, task)
            except _ProcessDied:
                log.error("a sphinx alignment process died; starting another")
                self._replace(member)
                if attempt == 2:
                    raise RuntimeError("the sphinx alignment process died twice on this alignment") from None
                continue
            except BaseException:  # stopped (JobStopped) while it decodes: its answer is owed to no one
                self._replace(member)
                raise
            self._idle.put(member)
            if ok:
                return value
            raise value
        raise AssertionError("unreachable")

    def _take(self) -> _AlignProcess:
        """A free process, waited for while the job is not stopped."""
        while True:
            try:
                return self._idle.get(timeout=POLL_SECONDS)
            except queue.Empty:
                stopping.check("alignment")
                with self._lock:
                    if self._closed or not (self._members or self._starting):
                        raise RuntimeError("no sphinx alignment process is running") from None

    @staticmethod
    def _run(member: _AlignProcess, task: tuple) -> tuple[bool, Any]:
        """``task``'s answer from ``member``; JobStopped when the job is stopped before it comes."""
        flag = stopping.current_flag()
        try:
            member.conn.send(task)
            while not member.conn.poll(POLL_SECONDS):  # True at an answer, and at end of file (a dead process)
                if flag is not None and flag.is_set():
                    raise stopping.JobStopped("during alignment")
            return member.conn.recv()
        except (EOFError, OSError):
            raise _ProcessDied from None

    def _replace(self, member: _AlignProcess) -> None:
        """Kill ``member`` and start another in its place, in a thread of its own: the caller does not wait."""
        with self._lock:
            self._members.discard(member)
            replace = not self._closed
            self._starting += replace
        member.end(kill=True)
        if replace:
            threading.Thread(target=self._start_replacement, name="sphinx-restart", daemon=True).start()

    def _start_replacement(self) -> None:
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                member = self._spawn()
                try:
                    member.wait_started()
                except (RuntimeError, EOFError, OSError) as exc:
                    log.error("a new sphinx alignment process failed to start (try %d of %d): %s", attempt,
                              START_ATTEMPTS, exc)
                    with self._lock:
                        self._members.discard(member)
                    member.end(kill=True)
                    continue
                with self._lock:
                    closed = self._closed
                if closed:
                    member.end(kill=True)
                else:
                    self._idle.put(member)
                return
        finally:
            with self._lock:
                self._starting -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            members = list(self._members)
            self._members.clear()
        for member in members:
            member.end(kill=False)
