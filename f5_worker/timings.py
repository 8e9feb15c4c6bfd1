"""The timing part of a response, shared by ``synthesize`` and ``align``: words, chars, captions, quality.

Below the actions and the synthesis service, which both build responses from it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from f5_worker.captions import CaptionLayout, render_captions
from f5_worker.schema import TimingOptions
from f5_worker.timed_text import Alignment


def timing_fields(alignment: Alignment, options: TimingOptions, duration: float, *,
                  speaker_prefix: bool = True) -> dict:
    """``words``, ``chars`` and ``captions`` of a response, as the request's options ask;
    ``speaker_prefix`` is the ``CAPTION_SPEAKER_PREFIX`` setting (SRT names a new speaker)."""
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
        out["captions"] = render_captions(alignment.words, list(options.caption_formats), layout, duration=duration,
                                          speaker_prefix=speaker_prefix)
    out["timings_estimated"] = alignment.estimated
    out["aligner"] = alignment.backend
    return out


def timing_bytes_bound(written: str, spoken: str, options: TimingOptions) -> int:
    """An upper bound of the JSON bytes ``timing_fields``, ``quality`` and the spoken text's fields
    (``normalized_text``, ``normalized_words``, ``normalized_chars``) add, before the audio exists, so a
    result too big to deliver is refused before synthesis is paid for. The spoken text can be several
    times the written one (digits said one by one), so each is counted for the fields that report it.

    Measured on English: about 103 bytes per word entry, 79 per character entry, 130 per word in
    JSON captions and 2-6 per character in the subtitle formats; the bounds leave room for long
    numbers, escapes and one caption per word.
    """
    def text_bytes(text: str) -> int:
        return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))

    def words(text: str) -> int:
        return len(text.split()) + sum(1 for ch in text if ord(ch) >= 0x2E80)  # CJK characters are words

    size = 4096 + 2 * text_bytes(written) + 2 * text_bytes(spoken)  # the other fields; quality's flagged words
    for text in (written, spoken):
        if options.word_timings:
            size += 160 * words(text) + text_bytes(text)
        if options.char_timings:
            size += 120 * len(text) + text_bytes(text)
    for fmt in options.caption_formats:
        size += 2048 + (200 if fmt == "json" else 80) * words(written) + 2 * text_bytes(written)
    return size


def quality_field(parts: Sequence[tuple[Alignment, float, int]]) -> dict:
    """The ``quality`` response field, from the (alignment, seconds of audio, re-samplings) of each part the
    audio was aligned in: one for a single text and for ``align``, one per part of a script or piece of a
    stream. The score is weighted by each part's duration (one part's is its own, not re-weighted), flagged
    words are counted in the whole text (a part's after the words of the parts before it), and every part's
    re-samplings add up. One builder, so a text, a script and a stream report quality alike."""
    total = sum(seconds for _, seconds, _ in parts) or 1.0
    flagged, before = [], 0
    for alignment, _, _ in parts:
        flagged.extend(before + i for i in alignment.flagged_words)
        before += len(alignment.words)
    score = parts[0][0].score if len(parts) == 1 else sum(a.score * seconds for a, seconds, _ in parts) / total
    return {
        "alignment_score": round(score, 3),
        "retries": sum(retries for _, _, retries in parts),
        "flagged_words": flagged,
    }
