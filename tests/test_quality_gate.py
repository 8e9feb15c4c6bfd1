"""The quality gate (alignment/quality.py): re-sample while the audio does not say the text, one loop for a
single text, a script's sampling runs in rounds, and a stream's pieces."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV
from f5_worker.alignment.quality import (
    SILENT_PEAK,
    GatedResult,
    is_silent,
    kept_attempt,
    passes_gate,
    synthesize_until_aligned,
)
from f5_worker.alignment.selection import load_aligner
from f5_worker.timed_text import Alignment
from f5_worker.timings import quality_field


def one_text(attempt):
    """``sample`` for ``synthesize_until_aligned`` over one text: ``attempt(seed)`` gives its audio."""
    return lambda indices, seed: [attempt(seed) for _ in indices]


def test_quality_gate_resamples_until_the_audio_matches():
    from f5_worker.alignment import espeak

    text = "Please call Stella and ask her to bring these things with her from the store."
    wrong = "Fourteen ducks swam slowly across the pond near the old mill."
    said = {11: wrong, 12: wrong, 13: text}  # seed -> what that "synthesis" says
    seeds = iter([12, 13, 14])
    calls = []

    def attempt(seed):
        calls.append(seed)
        audio, sr, _ = espeak.synthesize(said[seed])
        return audio, sr

    result, = synthesize_until_aligned([text], one_text(attempt), load_aligner("sphinx"), seed=11, max_retries=2,
                                       new_seed=lambda: next(seeds))
    assert calls == [11, 12, 13]
    assert result.seed == 13 and result.retries == 2
    assert result.alignment.score > 0.6
    assert quality_field([(result.alignment, 1.0, result.retries)])["retries"] == 2


class _Recording:
    """The real aligner, keeping each result it gives, so a test can see every attempt's score."""

    name = "sphinx"

    def __init__(self, inner):
        self.inner, self.results = inner, []

    def align(self, audio, sample_rate, text, *, language="en"):
        self.results.append(self.inner.align(audio, sample_rate, text, language=language))
        return self.results[-1]


def espeak_as_a_new_process_says(texts: list[str], tmp_path) -> list[tuple[np.ndarray, int]]:
    """espeak-ng's speech of ``texts``, said in this order by a process that has said nothing before.

    espeak-ng keeps synthesis state from one utterance to the next in its process, and nothing in its API
    resets it (a new voice, espeak_Initialize, espeak_ng_SetRandSeed: the same text still comes out
    different after other speech); only a voice without that state (``steady``) says it the same, and it
    is not the voice these scores were calibrated on. Scores calibrated on its speech hold only for speech
    made from the same start, not after whatever the tests before this one had it say.
    """
    out = tmp_path / "speech.npz"
    code = ("import sys, numpy as np; from f5_worker.alignment import espeak; "
            "said = [espeak.synthesize(t)[:2] for t in sys.argv[2:]]; "
            "np.savez(sys.argv[1], sr=said[0][1], **{f'w{i}': w for i, (w, _) in enumerate(said)})")
    subprocess.run([sys.executable, "-c", code, str(out), *texts], check=True, timeout=60)
    with np.load(out) as saved:
        return [(saved[f"w{i}"], int(saved["sr"])) for i in range(len(texts))]


def test_quality_gate_stops_at_max_retries_and_keeps_the_best(tmp_path):
    from f5_worker.alignment.quality import alignment_mismatch

    text = "Please call Stella."
    # Speech the text does not explain lowers the score, so every attempt misses the gate by a different
    # amount: the text and three more words (about 0.35), the text and two (about 0.48), two other words
    # only (about 0.21). The best attempt is neither the first nor the last.
    said = dict(zip([1, 2, 3], espeak_as_a_new_process_says(
        [f"{text} Fourteen ducks swam slowly.", f"{text} Fourteen ducks.", "Fourteen ducks."], tmp_path)))
    calls, waves = [], {}

    def attempt(seed):
        calls.append(seed)
        audio, sr = said[seed]
        waves[seed] = audio
        return audio, sr

    aligner = _Recording(load_aligner("sphinx"))
    result, = synthesize_until_aligned([text], one_text(attempt), aligner, seed=1, max_retries=2,
                                       new_seed=lambda: len(calls) + 1)
    assert calls == [1, 2, 3] and result.retries == 2
    assert all(alignment_mismatch(a) for a in aligner.results)
    first, middle, last = (a.score for a in aligner.results)
    assert middle > first > last
    assert result.seed == 2 and result.alignment is aligner.results[1] and result.wave is waves[2]


def test_quality_gate_never_accepts_silence_however_the_aligner_scores_it():
    from f5_worker.alignment import espeak
    from f5_worker.alignment.quality import alignment_mismatch

    text = "Please call Stella."
    silence, sr = np.zeros(48000, np.float32), 24000
    aligner = _Recording(load_aligner("sphinx"))
    assert not alignment_mismatch(aligner.align(silence, sr, text))  # the score alone would let it pass
    speech, speech_sr, _ = espeak.synthesize("Fourteen ducks swam slowly across the pond.")  # fails the gate
    said = {1: (silence, sr), 2: (speech, speech_sr), 3: (silence, sr)}
    result, = synthesize_until_aligned([text], one_text(lambda seed: said[seed]), aligner, seed=1, max_retries=2,
                                       new_seed=iter([2, 3, 4]).__next__)
    assert result.retries == 2 and result.seed == 2  # sound that misses beats silence that scores high
    assert aligner.results[1].score > aligner.results[2].score  # by score alone, silence would be kept
    only_silence, = synthesize_until_aligned([text], one_text(lambda seed: (silence, sr)), aligner, seed=1,
                                             max_retries=1, new_seed=lambda: 2)
    assert only_silence.retries == 1


@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=6))
def test_the_attempt_kept_is_the_first_that_passes_else_the_best_ranked(attempts):
    """``kept_attempt`` folded over attempts (sound or silence, a score) keeps the first that passes the gate,
    else the first of the best: any sound above silence, then the highest score."""
    from f5_worker.alignment.quality import MISMATCH_SCORE, GatedResult, kept_attempt
    from f5_worker.timed_text import Alignment

    sound, silence = np.full(240, 0.1, dtype=np.float32), np.zeros(240, dtype=np.float32)
    tried = [GatedResult(sound if loud else silence, 24000, Alignment([], [], score, "sphinx", False), n, n)
             for n, (loud, score) in enumerate(attempts)]
    kept = None
    for attempt in tried:
        kept = kept_attempt(kept, attempt)
        if attempt.wave is sound and attempt.alignment.score >= MISMATCH_SCORE:
            break
    passing = [a for a, (loud, score) in zip(tried, attempts) if loud and score >= MISMATCH_SCORE]
    best = max((loud, score) for loud, score in attempts)
    assert kept is (passing[0] if passing else tried[attempts.index(best)])


def test_quality_gate_accepts_a_good_first_attempt():
    wave, sr = sf.read(str(DEFAULT_VOICE_WAV), dtype="float32")
    result, = synthesize_until_aligned([DEFAULT_VOICE_TEXT], one_text(lambda seed: (wave, sr)), load_aligner("sphinx"),
                                       seed=5, max_retries=2, new_seed=lambda: 6)
    assert result.seed == 5 and result.retries == 0


def test_the_gate_resamples_only_the_failing_texts_in_rounds_and_keeps_each_ones_best(tmp_path):
    """Three texts at once, as a script's runs: the first round samples them all; the next ones only those
    whose audio did not say them, all with the round's one new seed; each keeps its own attempt, and a seed
    is drawn after every failing round (the last one too: a stream shares its generator between pieces)."""
    texts = ["Please call Stella.", "Fourteen ducks swam slowly.", "Bring these things with her."]
    said = espeak_as_a_new_process_says(texts + ["Something else entirely."], tmp_path)
    wrong = said[3]
    plan = {(0, 1): said[0], (1, 1): wrong, (2, 1): wrong,  # (text, seed) -> audio
            (1, 2): said[1], (2, 2): wrong, (2, 3): wrong}
    rounds, drawn = [], iter([2, 3, 4])

    def sample(indices, seed):
        rounds.append((list(indices), seed))
        return [plan[(i, seed)] for i in indices]

    gated = synthesize_until_aligned(texts, sample, load_aligner("sphinx"), seed=1, max_retries=2,
                                     new_seed=drawn.__next__)
    assert rounds == [([0, 1, 2], 1), ([1, 2], 2), ([2], 3)]
    assert list(drawn) == []  # 2, 3, and 4 after the last round, which still failed
    assert [(g.seed, g.retries, g.attempt) for g in gated[:2]] == [(1, 0, 0), (2, 1, 1)]
    assert gated[2].retries == 2 and gated[2].seed in (1, 2, 3)
    assert all(g.aligning_s > 0 for g in gated)


# --- what counts as silence, which attempt a retry keeps --------------------------------------------------

SAMPLE_RATE = 24_000


def attempt(score: float, peak: float, seed: int, estimated: bool = False) -> GatedResult:
    wave = np.zeros(SAMPLE_RATE, dtype=np.float32)
    wave[::100] = peak
    return GatedResult(wave, SAMPLE_RATE, Alignment([], [], score, "sphinx", estimated), seed, 0)


@pytest.mark.parametrize("peak, silent", [(0.0, True), (SILENT_PEAK / 2, True), (SILENT_PEAK, False), (0.5, False)])
def test_silence_is_a_peak_below_the_threshold(peak, silent):
    """Audio with sound is never silent, whatever its length; an empty wave says nothing."""
    assert is_silent(attempt(0.9, peak, 1).wave) is silent
    assert is_silent(np.full(100, -peak, dtype=np.float64)) is silent  # the threshold itself, exactly
    assert is_silent(np.zeros(0, dtype=np.float32))


def test_audio_with_sound_and_a_good_score_passes_and_silence_never_does():
    assert passes_gate(attempt(0.9, 0.5, 1).wave, attempt(0.9, 0.5, 1).alignment)
    assert not passes_gate(attempt(0.9, 0.0, 1).wave, attempt(0.9, 0.0, 1).alignment)
    assert not passes_gate(attempt(0.1, 0.5, 1).wave, attempt(0.1, 0.5, 1).alignment)


def test_a_retry_keeps_the_first_of_equally_ranked_failures_and_any_that_passes():
    """A later attempt replaces the kept one only when it passes or ranks above it: on a tie the first
    seed stays, so the seed a result reports is the one that made its audio first."""
    first, tie, better, passing = attempt(0.3, 0.5, 1), attempt(0.3, 0.5, 2), attempt(0.4, 0.5, 3), attempt(0.9, 0.5, 4)
    assert kept_attempt(None, first) is first
    assert kept_attempt(first, tie) is first
    assert kept_attempt(first, better) is better
    assert kept_attempt(better, attempt(0.35, 0.5, 5)) is better
    assert kept_attempt(better, passing) is passing
    assert kept_attempt(attempt(0.5, 0.0, 6), attempt(0.1, 0.5, 7)).seed == 7  # sound ranks above silence
