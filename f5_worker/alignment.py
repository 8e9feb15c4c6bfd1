"""Word and character timings for a known text in known audio.

We align the exact requested text to the final audio (forced alignment) rather
than re-transcribing it, so the words we time are the words that were asked
for. Backends live in :mod:`f5_worker.aligners`; this module holds what every
caller sees: the result types, backend selection, and the invariants every
backend's output must satisfy (each input word once, in order, ``start <=
end``, starts never going backwards, times within ``[0, duration]``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from f5_worker.aligners.textnorm import Token, tokenize
from f5_worker.errors import free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory
from f5_worker.settings import ALIGNER_KINDS

# Words whose confidence falls below this are listed in ``flagged_words``.
FLAG_CONFIDENCE = 0.35
# ``alignment_mismatch`` default: the overall score below which audio and text disagree.
MISMATCH_SCORE = 0.6


def floor_ms(seconds: float) -> float:
    """Milliseconds, rounded down: keeps ``start <= end``, order and ``end <= duration`` after rounding."""
    return math.floor(seconds * 1000 + 1e-6) / 1000


@dataclass
class TimedSpan:
    """One reported word or character with its time in the audio and its place in the text."""

    text: str
    start: float
    end: float
    confidence: float
    char_start: int
    char_end: int
    kind: str = "word"  # "word" or "char": the key ``to_dict`` uses for ``text``

    def to_dict(self) -> dict:
        return {
            self.kind: self.text,
            "start": floor_ms(self.start),
            "end": floor_ms(self.end),
            "confidence": round(self.confidence, 3),
            "char_start": self.char_start,
            "char_end": self.char_end,
        }


@dataclass
class Alignment:
    """Timings of every word (and character) of a text, plus how far to trust them."""

    words: list[TimedSpan]
    chars: list[TimedSpan]
    score: float  # 0..1 overall agreement of audio and text
    backend: str  # "ctc" | "sphinx" | "estimate"
    estimated: bool  # True when timings are estimated from text length, not aligned
    flagged_words: list[int] = field(default_factory=list)  # indices of low-confidence words
    align_seconds: float = 0.0  # wall time the backend took

    def quality(self) -> dict:
        return {
            "alignment_score": round(self.score, 3),
            "flagged_words": list(self.flagged_words),
            "estimated": self.estimated,
            "backend": self.backend,
        }


class Aligner(Protocol):
    name: str

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        """Time every word (and character) of ``text`` in ``audio``."""
        ...


@dataclass
class WordTiming:
    """What a backend found for one *spoken* (normalised) word.

    ``units`` are the word's sub-segments in order (phones for sphinx, letters
    for ctc) as ``(start, end)``; characters are placed on them.
    """

    start: float
    end: float
    confidence: float
    units: list[tuple[float, float]] = field(default_factory=list)


def build_alignment(
    text: str,
    tokens: list[Token],
    timings: list[WordTiming],
    *,
    duration: float,
    backend: str,
    estimated: bool,
    align_seconds: float = 0.0,
    speech_explained: float = 1.0,
) -> Alignment:
    """Turn per-spoken-word timings into reported word and character spans that obey the invariants.

    ``timings`` has one entry per spoken word, in the order of ``tokens``'
    ``spoken`` lists. Silent tokens (punctuation only) get a zero-length span
    where the previous word ended. ``speech_explained`` (0..1) is the share of
    the audio's speech that the aligned words cover; speech the aligner had to
    call silence means the audio says more than the text, and scales the score.
    """
    n_spoken = sum(len(t.spoken) for t in tokens)
    if len(timings) != n_spoken:
        raise ValueError(f"backend returned {len(timings)} timings for {n_spoken} spoken words")
    duration = max(0.0, float(duration))

    def clip(x: float) -> float:
        return min(max(float(x) if math.isfinite(x) else 0.0, 0.0), duration)

    words: list[TimedSpan] = []
    chars: list[TimedSpan] = []
    cursor = 0.0  # starts never go backwards
    k = 0
    for tok in tokens:
        own = timings[k : k + len(tok.spoken)]
        k += len(tok.spoken)
        if own:
            start = max(clip(own[0].start), cursor)
            end = max(clip(max(t.end for t in own)), start)
            weights = [max(t.end - t.start, 1e-3) for t in own]
            conf = float(np.clip(np.average([t.confidence for t in own], weights=weights), 0.0, 1.0))
            units = [u for t in own for u in (t.units or [(t.start, t.end)])]
        else:
            start = end = words[-1].end if words else cursor
            conf = words[-1].confidence if words else 1.0
            units = []
        words.append(TimedSpan(tok.text, start, end, conf, tok.char_start, tok.char_end))
        chars.extend(_place_chars(text, tok, start, end, units, conf, clip))
        cursor = start
    # A silent first token gets the first real word's confidence instead of the default.
    for i, tok in enumerate(tokens):
        if tok.spoken:
            for j in range(i):
                words[j].confidence = words[i].confidence
            break
    pairs = list(zip(words, tokens, strict=True))
    flagged = [i for i, (w, t) in enumerate(pairs) if t.spoken and w.confidence < FLAG_CONFIDENCE]
    spoken_conf = [(w.confidence, max(w.end - w.start, 1e-3)) for w, t in pairs if t.spoken]
    if estimated or not spoken_conf:
        score = 0.0 if estimated else 1.0
        flagged = []
    else:
        score = float(np.average([c for c, _ in spoken_conf], weights=[d for _, d in spoken_conf]))
        score *= float(np.clip(speech_explained, 0.0, 1.0))
    return Alignment(words, chars, score, backend, estimated, flagged, align_seconds)


def _place_chars(text, tok: Token, start: float, end: float, units, conf: float, clip) -> list[TimedSpan]:
    """Spread a word's characters over its sub-segments in proportion to their position.

    Letters and digits take time; other characters (punctuation) are instants
    at the current position.
    """
    positions = range(tok.char_start, tok.char_end)
    sounding = [p for p in positions if text[p].isalnum()]
    spans: list[TimedSpan] = []
    if not sounding:
        return _even_chars(text, tok, start, end, conf)
    units = units or [(start, end)]
    # Piecewise-linear map from "fraction of the word's letters" to time over the units.
    bounds = [max(clip(u[0]), start) for u in units] + [max(clip(units[-1][1]), start)]
    bounds = np.maximum.accumulate(np.minimum(bounds, end))

    def at(frac: float) -> float:
        x = frac * len(units)
        i = min(int(x), len(units) - 1)
        return float(bounds[i] + (x - i) * (bounds[i + 1] - bounds[i]))

    n = len(sounding)
    rank = {p: r for r, p in enumerate(sounding)}
    t = start
    for p in positions:
        if p in rank:
            s, e = at(rank[p] / n), at((rank[p] + 1) / n)
            s = max(s, t)
            e = max(e, s)
            spans.append(TimedSpan(text[p], s, e, conf, p, p + 1, "char"))
            t = e  # punctuation after a letter sits at the letter's end
        else:
            spans.append(TimedSpan(text[p], t, t, conf, p, p + 1, "char"))
    return spans


def _even_chars(text, tok: Token, start: float, end: float, conf: float) -> list[TimedSpan]:
    """Characters of a word with no sub-segments: equal shares of its span."""
    n = tok.char_end - tok.char_start
    step = (end - start) / n if n else 0.0
    return [TimedSpan(text[p], start + i * step, start + (i + 1) * step, conf, p, p + 1, "char")
            for i, p in enumerate(range(tok.char_start, tok.char_end))]


def backend_input(audio: np.ndarray, sample_rate: int, text: str, language: str, rate: int):
    """What every acoustic backend starts from: (mono float32 audio at ``rate``, the caller's
    duration in seconds, the text's tokens, the words to say)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(audio) / sample_rate if sample_rate else 0.0
    tokens = tokenize(text, language)
    spoken = [w for tok in tokens for w in tok.spoken]
    if sample_rate != rate:
        from f5_worker.audio import resample

        audio = resample(audio, sample_rate, rate)
    return audio, duration, tokens, spoken


def speech_region(
    audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.02, floor_db: float = -40.0
) -> tuple[float, float]:
    """First and last moment the audio is louder than ``floor_db`` below its peak frame (seconds)."""
    hop = max(1, int(sample_rate * frame_s))
    n = len(audio) // hop
    if n == 0:
        return 0.0, len(audio) / sample_rate if sample_rate else 0.0
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    if len(loud) == 0:
        return 0.0, len(audio) / sample_rate
    return loud[0] * hop / sample_rate, min((loud[-1] + 1) * hop / sample_rate, len(audio) / sample_rate)


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


class AutoAligner:
    """``auto``: the best backend available for each request's language."""

    name = "auto"

    def __init__(self, *, device: str = "cpu", model_dir: str | None = None, processes: int = 0):
        from f5_worker.aligners.ctc import CtcAligner, find_weights

        self.ctc = CtcAligner(device=device, model_dir=model_dir) if find_weights(model_dir, "en") else None
        self.ctc_multilingual = None
        if find_weights(model_dir, "mul"):
            self.ctc_multilingual = CtcAligner(device=device, model_dir=model_dir, multilingual=True)
        self.sphinx = sphinx_aligner(processes if self.ctc is None else 0)  # with ctc, English never uses it
        self.estimate = EstimateAligner()

    def backend_for(self, language: str) -> Aligner:
        english = language.lower().split("-")[0] == "en"
        if english and self.ctc is not None:
            return self.ctc
        if not english and self.ctc_multilingual is not None:
            return self.ctc_multilingual
        if english:
            return self.sphinx
        return self.estimate

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        return self.backend_for(language).align(audio, sample_rate, text, language=language)


def sphinx_aligner(processes: int = 0) -> Aligner:
    """pocketsphinx in this process (``processes`` 0), or in a pool of worker processes."""
    if processes > 0:
        from f5_worker.aligners.sphinx_pool import SphinxProcessPool

        return SphinxProcessPool(processes)
    from f5_worker.aligners.sphinx import SphinxAligner

    return SphinxAligner()


def load_aligner(kind: str = "auto", *, device: str = "cpu", model_dir: str | None = None,
                 processes: int = 0) -> Aligner:
    """Build the aligner named by the ``ALIGNER`` setting once, at worker start.

    ``ctc`` fails loudly when its weights are not in the cache (nothing is
    downloaded here); ``auto`` quietly falls back to sphinx, then to estimates.
    ``processes`` > 0 runs sphinx in that many worker processes.
    """
    kind = (kind or "auto").lower()
    if kind == "auto":
        return AutoAligner(device=device, model_dir=model_dir, processes=processes)
    if kind == "ctc":
        from f5_worker.aligners.ctc import CtcAligner

        return CtcAligner(device=device, model_dir=model_dir)
    if kind == "sphinx":
        return sphinx_aligner(processes)
    if kind == "estimate":
        return EstimateAligner()
    raise ValueError(f"unknown aligner {kind!r}; expected one of {', '.join(ALIGNER_KINDS)}")


def align_audio(aligner: Aligner, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
    """The one entry point the ``align`` action, synthesize and the accuracy script all use.

    Falls back to estimated timings if the backend fails, so a job never dies
    on alignment; the fallback is visible as ``estimated=True``. A CUDA error is
    the exception: it passes, as the GPU is lost for every later job too.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    t0 = time.perf_counter()
    try:
        result = aligner.align(audio, sample_rate, text, language=language)
    except Exception as exc:  # noqa: BLE001 - alignment must never fail a job; the fallback is flagged
        import logging

        if is_gpu_failure(exc):
            raise  # the GPU is lost for every later job too: Worker.handle has the worker replaced
        if is_gpu_out_of_memory(exc):
            free_gpu_memory()  # the audio already synthesised is worth more than exact timings: estimate
        logging.getLogger(__name__).exception("aligner %s failed; estimating timings", getattr(aligner, "name", "?"))
        result = EstimateAligner().align(audio, sample_rate, text, language=language)
    result.align_seconds = time.perf_counter() - t0
    return result


def alignment_mismatch(alignment: Alignment, threshold: float = MISMATCH_SCORE) -> bool:
    """True when the audio evidently does not say the text (worth re-synthesising).

    Timings estimated because no aligner fits the language carry no evidence
    either way and never count; a real backend that found no path through the
    text (``estimated`` with a backend other than "estimate") always does.
    """
    if alignment.estimated:
        return alignment.backend != "estimate"
    return alignment.score < threshold
