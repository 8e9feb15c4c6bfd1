"""Timings estimated from the text's length, where no aligner can measure them.

Used for languages no backend covers, when a backend fails, and (marked as the
backend's own result, score 0) when a backend finds no path through the text.
"""

from __future__ import annotations

import time

import numpy as np

from f5_worker.alignment.aligner import WordTiming, build_alignment
from f5_worker.audio import speech_region
from f5_worker.text.tokens import tokenize
from f5_worker.timed_text import Alignment


class EstimateAligner:
    """Timings guessed from text length over the speech region; used when no real aligner fits.

    Results are flagged ``estimated=True`` with confidence 0, so nobody mistakes them for measurements.
    """

    name = "estimate"

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        t0 = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration = len(audio) / sample_rate if sample_rate else 0.0
        tokens = tokenize(text, language)
        lo, hi = speech_region(audio, sample_rate)
        spoken = [(w, tok) for tok in tokens for w in tok.spoken]
        # Weight: letters of the spoken word plus a pause after sentence and clause punctuation.
        weights = []
        for i, (w, tok) in enumerate(spoken):
            last_of_token = i + 1 == len(spoken) or spoken[i + 1][1] is not tok
            mark = tok.text[-1:] if last_of_token else ""
            pause = 3.0 if mark and mark in ".!?;:" else 1.5 if mark and mark in ",—" else 0.0
            weights.append((max(len(w), 1) + 1.0, pause))
        total = sum(a + b for a, b in weights[:-1]) + (weights[-1][0] if weights else 0.0)
        scale = (hi - lo) / total if total else 0.0
        timings, t = [], lo
        for word_w, pause_w in weights:
            timings.append(WordTiming(t, t + word_w * scale, 0.0))
            t += (word_w + pause_w) * scale
        return build_alignment(text, tokens, timings, duration=duration, backend="estimate", estimated=True,
                               align_seconds=time.perf_counter() - t0)


def unalignable(audio, sample_rate, text, language, duration, t0, backend: str) -> Alignment:
    """No path through the text fits the audio: the audio does not say the text.

    Timings fall back to estimates; the result stays marked as the backend's result with
    score 0 and every spoken word flagged, so the quality gate sees the mismatch.
    """
    result = EstimateAligner().align(audio, sample_rate, text, language=language)
    for span in result.words + result.chars:  # resampled audio: same duration, up to a sample
        span.start, span.end = min(span.start, duration), min(span.end, duration)
    result.backend = backend
    result.score = 0.0
    result.flagged_words = [i for i, tok in enumerate(tokenize(text, language)) if tok.spoken]
    result.align_seconds = time.perf_counter() - t0
    return result
