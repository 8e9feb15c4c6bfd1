"""The quality gate (alignment/quality.py): what counts as silence, which attempt a retry keeps."""

from __future__ import annotations

import numpy as np
import pytest

from f5_worker.alignment.quality import SILENT_PEAK, GatedResult, is_silent, kept_attempt, passes_gate
from f5_worker.timed_text import Alignment

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
