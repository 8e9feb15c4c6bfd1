"""pocketsphinx alignment in worker processes: same timings as in-process, in parallel, and it survives a crash."""

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import soundfile as sf

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV
from f5_worker.alignment.selection import AutoAligner, load_aligner
from f5_worker.alignment.sphinx import SphinxAligner
from f5_worker.alignment.sphinx_pool import SphinxProcessPool, auto_processes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool():
    pool = SphinxProcessPool(2)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def speech():
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    return wave, sr


def spans(alignment):
    return [(w.text, w.start, w.end, w.confidence) for w in alignment.words], alignment.score


def test_pool_gives_the_in_process_timings(pool, speech):
    wave, sr = speech
    want = SphinxAligner().align(wave, sr, DEFAULT_VOICE_TEXT)
    assert not want.estimated and len(want.words) == len(DEFAULT_VOICE_TEXT.split())
    texts = [DEFAULT_VOICE_TEXT] * 4 + ["Some call me nature."]
    with ThreadPoolExecutor(5) as threads:
        got = list(threads.map(lambda text: pool.align(wave, sr, text), texts))
    assert all(spans(g) == spans(want) for g in got[:4])
    assert [w.text for w in got[4].words] == ["Some", "call", "me", "nature."]
    assert len(pool.pids()) == 2 and os.getpid() not in pool.pids()


def test_a_killed_process_is_replaced(speech):
    wave, sr = speech
    pool = SphinxProcessPool(1)
    try:
        before = pool.pids()
        os.kill(next(iter(before)), signal.SIGKILL)
        result = pool.align(wave, sr, DEFAULT_VOICE_TEXT)
        assert not result.estimated and len(result.words) == len(DEFAULT_VOICE_TEXT.split())
        assert pool.pids() and pool.pids().isdisjoint(before)
    finally:
        pool.close()


def test_load_aligner_uses_processes_only_when_asked():
    assert isinstance(load_aligner("sphinx"), SphinxAligner)
    auto = load_aligner("auto", processes=1)
    try:
        assert isinstance(auto, AutoAligner) and isinstance(auto.sphinx, SphinxProcessPool)
    finally:
        auto.sphinx.close()
    assert auto_processes("cpu") == 1  # never 0 by default: a decode in the worker process freezes it
    assert 1 <= auto_processes("cuda") <= 8
