"""The ``align`` action and the timing fields shared with ``synthesize``.

``align`` takes a recording (``audio_url`` or ``audio_base64``) and its
transcript and returns the same ``words``, ``chars`` and ``captions`` a
synthesis returns: for people with human recordings, and for checking the
aligner on audio whose true timings are known.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from pydantic import Field, model_validator

from f5_worker import audio, stopping
from f5_worker.aligners.textnorm import guess_language
from f5_worker.alignment import Aligner, Alignment, align_audio, alignment_mismatch
from f5_worker.captions import CaptionLayout, render_captions
from f5_worker.errors import JobError
from f5_worker.schema import MAX_TEXT_CHARS, TimingOptions, register_action

MAX_ALIGN_AUDIO_SECONDS = 1800.0


class AlignRequest(TimingOptions):
    action: Literal["align"]
    text: str = Field(..., max_length=MAX_TEXT_CHARS)
    audio_url: str | None = Field(None, min_length=1, max_length=4096)
    audio_base64: str | None = Field(None, min_length=1)
    language: str | None = Field(None, min_length=2, max_length=16)  # None: guessed from the text's script

    @model_validator(mode="after")
    def _valid(self):
        if (self.audio_url is None) == (self.audio_base64 is None):
            raise JobError("audio_base64", "give exactly one of audio_url or audio_base64")
        if not self.text.strip():
            raise JobError("text", "is empty")
        if not any(ch.isalnum() for ch in self.text):
            raise JobError("text", "has no letters or digits to align")
        if self.language is not None and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", self.language):
            raise JobError("language", "must be a language tag such as en, fr or zh-CN")
        return self


register_action("align", AlignRequest)


def timing_fields(alignment: Alignment, options: TimingOptions, duration: float) -> dict:
    """``words``, ``chars`` and ``captions`` of a response, as the request's options ask."""
    out: dict = {}
    if options.word_timings:
        out["words"] = [w.to_dict() for w in alignment.words]
    if options.char_timings:
        out["chars"] = [c.to_dict() for c in alignment.chars]
    if options.caption_formats:
        layout = CaptionLayout(
            max_chars_per_line=options.max_chars_per_line,
            max_lines=options.max_lines,
            max_caption_seconds=options.max_caption_seconds,
        )
        out["captions"] = render_captions(alignment.words, list(options.caption_formats), layout, duration=duration)
    out["timings_estimated"] = alignment.estimated
    out["aligner"] = alignment.backend
    return out


def timing_bytes_bound(text: str, options: TimingOptions) -> int:
    """An upper bound of the JSON bytes ``timing_fields`` and ``quality`` add for ``text``, before the
    audio exists, so a result too big to deliver is refused before synthesis is paid for.

    Measured on English: about 103 bytes per word entry, 79 per character entry, 130 per word in
    JSON captions and 2-6 per character in the subtitle formats; the bounds leave room for long
    numbers, escapes and one caption per word.
    """
    text_bytes = len(json.dumps(text, ensure_ascii=False).encode("utf-8"))
    words = len(text.split()) + sum(1 for ch in text if ord(ch) >= 0x2E80)  # CJK characters are words
    size = 4096 + 2 * text_bytes  # the other fields; quality's flagged words
    if options.word_timings:
        size += 160 * words + text_bytes
    if options.char_timings:
        size += 120 * len(text) + text_bytes
    for fmt in options.caption_formats:
        size += 2048 + (200 if fmt == "json" else 80) * words + 2 * text_bytes
    return size


def quality_field(alignment: Alignment, retries: int = 0) -> dict:
    """The ``quality`` response field: how well the audio matches the text."""
    return {
        "alignment_score": round(alignment.score, 3),
        "retries": retries,
        "flagged_words": list(alignment.flagged_words),
    }


@dataclass
class GatedResult:
    """The attempt a quality-gated synthesis keeps."""

    wave: np.ndarray
    sample_rate: int
    alignment: Alignment
    seed: int
    retries: int  # attempts after the first


def synthesize_until_aligned(
    attempt: Callable[[int], tuple[np.ndarray, int]],
    aligner: Aligner,
    text: str,
    *,
    seed: int,
    max_retries: int,
    language: str = "en",
    new_seed: Callable[[], int] | None = None,
) -> GatedResult:
    """Synthesise with ``attempt(seed)``, align the final audio, and re-sample with a new seed
    while the audio does not match the text, up to ``max_retries`` times.

    Returns the first attempt that passes, else the best-scoring one. ``attempt`` must return
    the final audio (after cross-fades and silence removal), so the timings match what is heard.
    """
    new_seed = new_seed or (lambda: random.randint(0, 2**31 - 1))
    best: GatedResult | None = None
    for n in range(max_retries + 1):
        wave, sample_rate = attempt(seed)
        alignment = align_audio(aligner, wave, sample_rate, text, language=language)
        current = GatedResult(wave, sample_rate, alignment, seed, n)
        if best is None or alignment.score > best.alignment.score:
            best = current
        if not alignment_mismatch(alignment):
            best = current
            break
        seed = new_seed()
    best.retries = n
    return best


class AlignAction:
    def __init__(self, aligner: Aligner, *, max_download_bytes: int, download_timeout_s: float,
                 max_audio_seconds: float = MAX_ALIGN_AUDIO_SECONDS):
        self.aligner = aligner
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s
        self.max_audio_seconds = max_audio_seconds

    def handlers(self) -> dict:
        return {"align": self.align}

    def align(self, request: AlignRequest, job_id: str | None = None) -> dict:
        from f5_worker.fetch import audio_bytes

        data, field = audio_bytes(request.audio_url, request.audio_base64, url_field="audio_url",
                                  b64_field="audio_base64", max_bytes=self.max_download_bytes,
                                  timeout_s=self.download_timeout_s)
        wave, sample_rate = audio.decode_audio(data, field, max_seconds=self.max_audio_seconds)
        duration = len(wave) / sample_rate
        if duration < 0.1:
            raise JobError(field, f"audio is only {duration * 1000:.0f} ms long; nothing to align")
        language = request.language or guess_language(request.text)
        stopping.check("alignment")
        result = align_audio(self.aligner, wave, sample_rate, request.text, language=language)
        out = {"duration": round(duration, 4), "sample_rate": sample_rate, "language": language}
        out.update(timing_fields(result, request, duration))
        out["quality"] = quality_field(result)
        out["timing"] = {"align_ms": round(result.align_seconds * 1000, 2)}
        return out
