"""A response's timings as values: each word or character with its time and its place in the text
(``TimedSpan``), and all of a text's timings with how far to trust them (``Alignment``).

These are what the aligner produces, what ``text.written_timings`` maps back to the text as written,
what captions are cut from and what a response reports. Every layer passes them on, so they import
nothing: any module may use them without pulling in the aligner or the text's rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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
    # Who says it and which part of a script it belongs to, where a text is spoken by several voices;
    # captions name the speaker from ``voice``.
    voice: str | None = None
    segment: int | None = None

    def to_dict(self) -> dict:
        out = {
            self.kind: self.text,
            "start": floor_ms(self.start),
            "end": floor_ms(self.end),
            "confidence": round(self.confidence, 3),
            "char_start": self.char_start,
            "char_end": self.char_end,
        }
        if self.voice is not None:
            out["voice"] = self.voice
        if self.segment is not None:
            out["segment"] = self.segment
        return out


@dataclass
class Alignment:
    """Timings of every word (and character) of a text, plus how far to trust them."""

    words: list[TimedSpan]
    chars: list[TimedSpan]
    score: float  # 0..1 overall agreement of audio and text
    backend: str  # "ctc" | "sphinx" | "dtw" | "estimate"
    estimated: bool  # True when timings are estimated from text length, not aligned
    flagged_words: list[int] = field(default_factory=list)  # indices of low-confidence words
    align_seconds: float = 0.0  # wall time the backend took
    # False where a low score is no sign that the audio says something else (dtw: its score measures
    # likeness to espeak-ng's voice as much as to the text); the quality gate then ignores it.
    score_is_evidence: bool = True
