"""What every aligner is (``Aligner``), what an acoustic backend starts from (``backend_input``), and
how a backend's per-word times become the ``Alignment`` every caller sees (``build_alignment``).

We align the exact requested text to the final audio (forced alignment) rather
than re-transcribing it, so the words we time are the words that were asked
for. ``build_alignment`` enforces what every backend's output satisfies: each
input word once, in order, ``start <= end``, starts never going backwards,
times within ``[0, duration]``. The result's types are values in
``f5_worker.timed_text``, below the text's rules, so that the text can map
timings back without importing the aligner. This module imports no backend
(``selection`` is the only one that does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from f5_worker.audio import resample
from f5_worker.text.tokens import Token, tokenize
from f5_worker.timed_text import Alignment, TimedSpan

# Words whose confidence falls below this are listed in ``flagged_words``.
FLAG_CONFIDENCE = 0.35
# The rate the acoustic backends (sphinx, ctc) work at: the align action decodes straight to it.
ALIGN_SAMPLE_RATE = 16000


class Aligner(Protocol):
    name: str

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        """Time every word (and character) of ``text`` in ``audio``."""
        ...


@dataclass
class WordTiming:
    """What a backend found for one *spoken* (normalized) word.

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
        audio = resample(audio, sample_rate, rate)
    return audio, duration, tokens, spoken
