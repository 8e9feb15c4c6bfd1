"""pocketsphinx alignment in worker processes: same timings as in-process, in parallel, and it survives a crash."""

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
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


def same_alignment(got, want) -> bool:
    return [(w.text, w.start, w.end) for w in got.words] == [(w.text, w.start, w.end) for w in want.words] \
        and np.allclose([w.confidence for w in got.words] + [got.score],
                        [w.confidence for w in want.words] + [want.score], rtol=0, atol=1e-4)


def test_pool_gives_the_in_process_timings(pool, speech):
    wave, sr = speech
    want = SphinxAligner().align(wave, sr, DEFAULT_VOICE_TEXT)
    assert not want.estimated and len(want.words) == len(DEFAULT_VOICE_TEXT.split())
    texts = [DEFAULT_VOICE_TEXT] * 4 + ["Some call me nature."]
    with ThreadPoolExecutor(5) as threads:
        got = list(threads.map(lambda text: pool.align(wave, sr, text), texts))
    # the same words and times; pocketsphinx's confidences and score can differ in the fifth decimal between
    # the pytest process and a spawned one, for the same samples (a plain process and a spawned one agree)
    assert all(same_alignment(g, want) for g in got[:4])
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
