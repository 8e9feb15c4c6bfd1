"""The sampler: chunks of a job in one CFM.sample call, concurrent compatible jobs in one batch."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV
from f5_worker.tts.chunking import chunk_text
from f5_worker.tts.reference import prepare_reference
from f5_worker.tts.sampler import SynthesisEngine, SynthesisParams


@pytest.fixture(scope="module")
def reference():
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    return prepare_reference(wave, sr, DEFAULT_VOICE_TEXT)


@pytest.fixture(scope="module")
def batching_engine(worker):
    """For jobs sampled one at a time: each waits out the (short) window alone."""
    return SynthesisEngine(worker.models, max_batch_jobs=4, max_wait_s=0.05)


# The batching tests give a batch exactly as many places as the jobs meant to share it, so it closes when it is
# full, never when its window ends. A window or join this long only ends a test that would otherwise hang.
HANG_GUARD_S = 120


def synthesize_together(engine, reference, jobs):
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(engine.synthesize, reference, text, params) for text, params in jobs]
        return [f.result() for f in futures]


def synthesize_in_queue_order(engine, reference, jobs):
    """Each job waits in the sampler's queue before the next is submitted, so the sampler meets them in this order."""
    queued = threading.Semaphore(0)
    engine.on_queued = lambda request: queued.release()
    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = []
            for text, params in jobs:
                futures.append(pool.submit(engine.synthesize, reference, text, params))
                assert queued.acquire(timeout=60), "a job never reached the sampler's queue"
            return [f.result() for f in futures]
    finally:
        engine.on_queued = None


def test_compatible_jobs_share_one_sampling_call(worker, reference):
    engine = SynthesisEngine(worker.models, max_batch_jobs=3, max_wait_s=HANG_GUARD_S)
    params = [SynthesisParams(nfe_step=4, seed=s) for s in (1, 2, 3)]
    texts = ["First job here.", "A second, somewhat longer job follows.", "Third."]
    results = synthesize_together(engine, reference, list(zip(texts, params)))
    assert [r.batch_jobs for r in results] == [3, 3, 3]
    # each job gets audio sized from its own text, not the batch's longest
    lengths = [len(r.wave) for r in results]
    assert lengths[1] > lengths[0] and len(set(lengths)) == 3
    assert all(np.isfinite(r.wave).all() and np.abs(r.wave).max() > 0 for r in results)


def test_incompatible_jobs_are_sampled_separately(worker, reference, caplog):
    """Queued with 4, 6, 4, 6 steps: the first batch passes over the 6-step job and takes the second 4-step one."""
    engine = SynthesisEngine(worker.models, max_batch_jobs=2, max_wait_s=HANG_GUARD_S)
    jobs = [(text, SynthesisParams(nfe_step=steps, seed=1))
            for text, steps in [("Four steps.", 4), ("Six steps.", 6), ("Four again.", 4), ("Six again.", 6)]]
    with caplog.at_level("INFO", logger="f5_worker.tts.sampler"):
        results = synthesize_in_queue_order(engine, reference, jobs)
    assert [r.batch_jobs for r in results] == [2, 2, 2, 2]
    assert re.findall(r"sampling (\d+) job\(s\): .*, (\d+) steps", caplog.text) == [("2", "4"), ("2", "6")]


def test_a_job_sampled_alone_is_reproducible(batching_engine, reference):
    params = SynthesisParams(nfe_step=4, seed=77)
    a = batching_engine.synthesize(reference, "Same again.", params)
    b = batching_engine.synthesize(reference, "Same again.", params)
    assert a.batch_jobs == b.batch_jobs == 1 and np.array_equal(a.wave, b.wave)


def test_reference_mel_is_computed_once_per_reference(batching_engine, reference):
    batching_engine.synthesize(reference, "Warm the cache.", SynthesisParams(nfe_step=4, seed=1))
    (mel,) = reference.mels.values()
    batching_engine.synthesize(reference, "Use the cache.", SynthesisParams(nfe_step=4, seed=1))
    (again,) = reference.mels.values()
    assert again is mel and mel.shape == (len(reference.wave) // 256 + 1, 100)


@given(st.lists(st.sampled_from(list("abc ,.!?;:\n") + ["。", "，", "x" * 30]), min_size=1, max_size=60).map("".join),
       st.integers(min_value=20, max_value=200))
def test_chunk_text_keeps_every_character_in_order(text, max_chars):
    chunks = chunk_text(text, max_chars)
    squash = lambda s: re.sub(r"\s", "", s)  # noqa: E731  (chunking only moves whitespace)
    assert squash("".join(chunks)) == squash(text)
    assert all(chunk == chunk.strip() and chunk for chunk in chunks)
    assert all(len(chunk.encode("utf-8")) <= max_chars for chunk in chunks)


@given(st.lists(st.sampled_from(["a", "bb", "ü", "好", " ", "  ", "x" * 70, "\n"]), min_size=1, max_size=400).map("".join),
       st.integers(min_value=4, max_value=200))
def test_text_without_punctuation_is_still_chunked_at_spaces(text, max_chars):
    """Upstream makes one chunk of any length here; a chunk never passes max_chars, and only an
    over-long word is cut inside."""
    chunks = chunk_text(text, max_chars)
    assert [w for c in chunks for w in c.split()] == [p for w in text.split() for p in _pieces(w, max_chars)]
    assert all(chunk and len(chunk.encode("utf-8")) <= max_chars for chunk in chunks)


@given(st.lists(st.text("abcé ", min_size=1, max_size=20).map(lambda s: s.strip() + "."), min_size=2, max_size=12),
       st.integers(min_value=42, max_value=120))
def test_a_chunk_takes_every_sentence_that_still_fits(sentences, max_chars):
    """Upstream's rule: sentences (each within max_chars here: at most 41 bytes) are added to a chunk while it
    stays within max_chars, so a chunk followed by the next sentence would be over it (a chunk cut sooner is
    one more sampling run, and one more join)."""
    text = " ".join(sentences)
    chunks = chunk_text(text, max_chars)
    assert " ".join(chunks) == text
    for chunk, after in zip(chunks, chunks[1:]):
        next_sentence = re.split(r"(?<=\.) ", after)[0]
        assert len(f"{chunk} {next_sentence}".encode()) > max_chars, (chunk, after)


@pytest.mark.parametrize("speed", [0.5, 1.0, 2.0])
def test_reference_and_chunk_last_at_most_22_s_as_upstream_sizes_them(reference, speed):
    """Upstream sizes a chunk so the reference and the speech made from it stay under about 22 s together
    (F5-TTS was trained on clips of at most 30 s); a text without sentence marks is cut as long as that allows."""
    from f5_worker.tts.chunking import chunk_frames, plan_chunks

    chunks = plan_chunks(reference, "word " * 2000, speed)
    seconds = [chunk_frames(reference, c, speed, 256) * 256 / 24000 for c in chunks]
    assert len(chunks) > 3 and max(seconds) <= 22.0 and min(seconds[:-1]) > 21.0, seconds


def _pieces(word: str, max_chars: int) -> list[str]:
    """How an over-long word is cut: the longest prefixes that fit."""
    out = []
    while len(word.encode("utf-8")) > max_chars:
        cut = max(i for i in range(1, len(word) + 1) if len(word[:i].encode("utf-8")) <= max_chars)
        out.append(word[:cut])
        word = word[cut:]
    return out + [word]


def test_a_failed_sampling_run_leaves_no_stale_text_cache(worker, reference, monkeypatch):
    """f5-tts caches the text embedding per thread and empties it only when CFM.sample returns."""
    engine = SynthesisEngine(worker.models)
    params = SynthesisParams(nfe_step=4, seed=5)
    text = "The same words, before and after."
    before = engine.synthesize(reference, text, params).wave

    dit = worker.models.cfm.transformer
    real_forward, calls = dit.forward, []

    def failing_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the first step filled the cache
            raise RuntimeError("simulated out of memory")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(dit, "forward", failing_forward)
    with pytest.raises(RuntimeError, match="simulated"):
        engine.synthesize(reference, "Another, longer text that fails halfway through its sampling run.", params)
    monkeypatch.undo()
    after = engine.synthesize(reference, text, params).wave
    assert np.array_equal(before, after)


def test_compatible_jobs_too_big_to_share_a_batch_are_sampled_one_after_another(worker, reference):
    """A job over the batch's frame limit waits for the next batch (it used to be handed back forever).

    The first job's run is held until the other two are queued, so the next batch's window meets a job too big
    to join it.
    """
    params = SynthesisParams(nfe_step=4, seed=1)
    text = "A job long enough that two of them do not fit in one batch."
    frames = sum(_planned_frames(worker, reference, text, params))
    engine = SynthesisEngine(worker.models, max_batch_jobs=4, max_wait_s=0.05, max_batch_frames=frames + 1)
    all_queued = threading.Barrier(4)  # three jobs' threads, once queued, and the held sampling run

    def hold_the_first_run(module, args):
        handle.remove()
        all_queued.wait(60)

    handle = worker.models.cfm.transformer.register_forward_pre_hook(hold_the_first_run)
    engine.on_queued = lambda request: all_queued.wait(60)
    results = []
    # daemon threads, joined with a timeout: the old failure spun the sampler forever, and must fail, not hang
    threads = [threading.Thread(target=lambda: results.append(engine.synthesize(reference, text, params)),
                                daemon=True) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD_S)
    finally:
        handle.remove()
        all_queued.abort()
    assert [r.batch_jobs for r in results] == [1, 1, 1]
    assert not engine._waiting


def test_waiting_work_is_served_first_audio_first_then_oldest_job_first(worker, reference):
    """A stream's first piece jumps the queue; then the job that started first goes first, whatever the order
    its work arrived in (in arrival order, concurrent streams would all end at the end of the round)."""
    engine = SynthesisEngine(worker.models, max_batch_jobs=1, max_wait_s=0.0)
    text = "Short words here."
    jobs = {  # seed -> the job's params; queued in this order while the first run is held
        1: SynthesisParams(nfe_step=4, seed=1, job_started=1.0),  # sampled first: it holds the sampler
        2: SynthesisParams(nfe_step=4, seed=2, job_started=30.0),
        3: SynthesisParams(nfe_step=4, seed=3, job_started=10.0),
        4: SynthesisParams(nfe_step=4, seed=4, job_started=50.0, first_audio=True),
        5: SynthesisParams(nfe_step=4, seed=5, job_started=20.0),
    }
    queued, sampled = threading.Semaphore(0), []
    release = threading.Event()

    def note_each_run(module, args):
        if engine._running and (not sampled or sampled[-1] != engine._running[0].params.seed):
            sampled.append(engine._running[0].params.seed)
            if len(sampled) == 1:
                release.wait(60)  # the first run waits until every other job is queued

    handle = worker.models.cfm.transformer.register_forward_pre_hook(note_each_run)
    engine.on_queued = lambda request: queued.release()
    threads = []
    try:
        for params in jobs.values():
            threads.append(threading.Thread(target=engine.synthesize, args=(reference, text, params), daemon=True))
            threads[-1].start()
            assert queued.acquire(timeout=60)  # each queued before the next: arrival order is the dict's
        release.set()
        for t in threads:
            t.join(HANG_GUARD_S)
    finally:
        release.set()
        handle.remove()
        engine.close(10)
    assert sampled == [1, 4, 3, 5, 2]


def _planned_frames(worker, reference, text, params):
    from f5_worker.tts.chunking import chunk_frames, plan_chunks

    return [chunk_frames(reference, c, params.speed, worker.models.hop_length)
            for c in plan_chunks(reference, text, params.speed)]
