"""A script's parts joined into one result: their audio end to end with the pauses' silence, their timings
placed in the whole and mapped back to the text as written, and the job's quality.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from f5_worker import audio
from f5_worker.alignment.quality import GatedResult
from f5_worker.synthesis.script import ScriptPart
from f5_worker.text.markup import Pause
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.written_timings import as_written
from f5_worker.timed_text import Alignment, TimedSpan, floor_ms
from f5_worker.timings import quality_field
from f5_worker.tts.sampler import SynthesisResult

PART_FADE_S = 0.01  # seconds: each part of a script fades in and out over this long


@dataclass(frozen=True)
class JoinedScript:
    """The whole job's audio and timings. ``alignment``: the words as written, times absolute, offsets in the
    text each part came from; ``normalized``: the words as spoken, offsets in ``normalized_text``."""

    wave: np.ndarray
    normalized_text: str
    alignment: Alignment | None = None
    normalized: Alignment | None = None
    quality: dict | None = None


def join_script(script: list[ScriptPart | Pause], parts: list[ScriptPart], spoken: list[NormalizedText],
                outcomes: list[tuple[SynthesisResult, GatedResult | None]], pause_samples: dict[int, int],
                sample_rate: int, labelled: bool = False) -> JoinedScript:
    """The parts end to end with their pauses' silence (exactly ``pause_samples[id(pause)]`` samples each).

    A text without markup is one part: its audio is the part's, untouched. Otherwise each part fades in and
    out over ``PART_FADE_S`` (its length kept), so a part meets silence or the next voice without a click.
    Parts' spoken texts, trimmed, are joined with one space into ``normalized_text``. ``labelled``: every word and
    character carries its part's voice and segment.
    """
    plain = len(script) == 1
    waves: list[np.ndarray] = []
    written_words: list[TimedSpan] = []
    written_chars: list[TimedSpan] = []
    spoken_words: list[TimedSpan] = []
    spoken_chars: list[TimedSpan] = []
    per_part: list[tuple[Alignment, float, int]] = []
    at_sample, at_char = 0, 0
    outcome = iter(zip(parts, spoken, outcomes))
    for item in script:
        if isinstance(item, Pause):
            waves.append(np.zeros(pause_samples[id(item)], dtype=np.float32))
            at_sample += len(waves[-1])
            continue
        part, said, (result, gated) = next(outcome)
        wave = result.wave if plain else audio.fade_edges(result.wave, sample_rate, PART_FADE_S)
        start = at_sample / sample_rate
        lead = len(said.spoken) - len(said.spoken.lstrip())  # what was left out at its start ("# Title")
        if gated is not None:
            found = gated.alignment
            written = as_written(said, found)
            label = part.labels() if labelled else {}
            end = (at_sample + len(wave)) / sample_rate
            written_words += [shifted(w, start, part.char_offset, end, **label) for w in written.words]
            written_chars += [shifted(c, start, part.char_offset, end, **label) for c in written.chars]
            spoken_words += [shifted(w, start, at_char - lead, end, **label) for w in found.words]
            spoken_chars += [shifted(c, start, at_char - lead, end, **label) for c in found.chars if c.char_start >= lead]
            per_part.append((written, len(wave) / sample_rate, gated.retries))
        waves.append(wave)
        at_sample += len(wave)
        at_char += len(said.spoken.strip()) + 1
    whole = waves[0] if len(waves) == 1 else np.concatenate(waves)
    normalized_text = " ".join(s.spoken.strip() for s in spoken)  # as a stream joins its pieces: one space
    if not per_part:
        return JoinedScript(whole, normalized_text)
    first = per_part[0][0]
    quality = quality_field(per_part)
    estimated = any(a.estimated for a, _, _ in per_part)
    return JoinedScript(
        whole, normalized_text,
        alignment=Alignment(written_words, written_chars, quality["alignment_score"], first.backend, estimated,
                            list(quality["flagged_words"])),
        normalized=Alignment(spoken_words, spoken_chars, quality["alignment_score"], first.backend, estimated),
        quality=quality,
    )


def shifted(span: TimedSpan, seconds: float, chars: int, until: float, **fields) -> TimedSpan:
    """A part's word or character placed in the whole: ``seconds`` later, ``chars`` further into its text.
    Times are rounded to whole milliseconds (never floored below the part's start), and never rounded past
    ``until``, the end of the part's audio (floored to a millisecond): a word ending 0.6 ms before the end
    of the audio must not end after it."""
    last = floor_ms(until)
    return replace(span, start=min(round(seconds + span.start, 3), last), end=min(round(seconds + span.end, 3), last),
                   char_start=span.char_start + chars, char_end=span.char_end + chars, **fields)
