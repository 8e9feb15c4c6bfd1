"""pocketsphinx alignment in worker processes (setting ``ALIGN_PROCESSES``).

One in-process ``SphinxAligner`` aligns one job at a time (a decoder is not
thread-safe) and holds the GIL while it decodes. On a GPU worker that made
alignment the bottleneck of concurrent jobs and slowed the sampler thread's
kernel launches (docs/performance.md). Here each process has its own decoders,
so alignments of concurrent jobs run in parallel on other cores, and the
worker process keeps its GIL for the GPU.

Processes are started with ``spawn`` (never ``fork``: the parent holds CUDA
state and threads). A crashed process breaks the pool; it is rebuilt once and
the alignment retried, so one bad decode cannot disable timings for good.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from f5_worker.alignment.sphinx import SAMPLE_RATE, SphinxAligner
from f5_worker.audio import resample
from f5_worker.timed_text import Alignment

log = logging.getLogger(__name__)

_ALIGNER = None  # the SphinxAligner of a pool process


def _start_process() -> None:
    global _ALIGNER
    _ALIGNER = SphinxAligner()


def _pid() -> int:
    return os.getpid()


def _align(audio: np.ndarray, sample_rate: int, text: str, language: str) -> Alignment:
    return _ALIGNER.align(audio, sample_rate, text, language=language)


def auto_processes(device: str) -> int:
    """0 (align in-process) on CPU, where model compute takes the cores anyway; else up to 8, leaving 2 cores."""
    if not device.startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 1) - 2))


class SphinxProcessPool:
    """Same interface as ``SphinxAligner``; each call runs in one of ``processes`` worker processes."""

    name = "sphinx"

    def __init__(self, processes: int):
        self.processes = max(1, processes)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_process)
        # start every process now, at worker start, rather than inside the first jobs
        pids = {f.result() for f in [pool.submit(_pid) for _ in range(self.processes)]}
        log.info("sphinx alignment in %d processes (%d started)", self.processes, len(pids))
        return pool

    def pids(self) -> set[int]:
        return {p.pid for p in self._pool._processes.values()}  # noqa: SLF001 - for the tests

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            # here, where torch is loaded anyway, with the resampler the process would use; importing torch
            # there took 3 s on each process's first job. Cut to whole samples within the caller's duration.
            keep = len(audio) * SAMPLE_RATE // sample_rate
            audio, sample_rate = resample(audio, sample_rate, SAMPLE_RATE)[:keep], SAMPLE_RATE
        pool = self._pool
        try:
            return pool.submit(_align, audio, sample_rate, text, language).result()
        except BrokenProcessPool:
            with self._lock:  # one caller rebuilds; the others find the new pool
                if self._pool is pool:
                    log.error("a sphinx alignment process died; restarting the pool")
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
            return self._pool.submit(_align, audio, sample_rate, text, language).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
