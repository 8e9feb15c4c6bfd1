"""What each sampling run of a script speaks: one part, or short parts of one voice joined; and a run's audio
cut back into its parts.

Upstream draws a text shorter than ``SHORT_TEXT_BYTES`` out to more than three times its length, so four
segments "Yes.", "No.", "Okay.", "Sure." lasted 5.4 s, and the same words as one text 1.9 s. A stream's
first piece grows with the words after it for the same reason; a script's short part grows with the
parts of its voice next to it, and its audio is cut back into the parts afterwards (``split_sampled``),
so each keeps its own words, voice and segment. A short part alone between pauses, or between other
voices, is drawn out as a text of its own is. A run is also the unit of the quality gate, so a garbled
line is re-sampled alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from f5_worker.alignment.quality import GatedResult
from f5_worker.synthesis.script import ScriptPart
from f5_worker.text.markup import Pause
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.timed_text import Alignment, TimedSpan
from f5_worker.tts.chunking import too_short
from f5_worker.tts.reference import PreparedReference
from f5_worker.tts.sampler import SynthesisResult

# Sampling runs of one job in one engine call: about the chunks the longest plain text samples at once with
# the default voice (5000 characters), so that a job's memory does not grow with its number of parts
MAX_RUNS_PER_CALL = 32


@dataclass(frozen=True)
class SampledText:
    """What one sampling run speaks: one part, or parts of one voice that meet with no pause between them,
    where one of them alone would be short (tts/chunking.too_short)."""

    members: tuple[int, ...]  # indices of the parts it speaks, in order
    starts: tuple[int, ...]  # where each member's spoken text starts in ``text``
    text: str  # the members' spoken texts, joined with a space
    ref: PreparedReference
    speed: float
    chunk_frames: tuple[int, ...] | None = None  # generated frames per chunk, when a duration is set (fit_duration)


def sampled_texts(script: list[ScriptPart | Pause], parts: list[ScriptPart], spoken: list[NormalizedText]
                  ) -> list[SampledText]:
    """The parts as the sampling runs that speak them, in order. Parts join where they are next to each other
    (a pause of no whole millisecond, ``<break strength="none"/>``, separates nothing), share a prepared
    reference and a speed, and the text so far or the next part is short."""
    groups: list[SampledText] = []
    joinable = False  # whether the last group may take the next part: no pause since it
    at = iter(range(len(parts)))
    for item in script:
        if isinstance(item, Pause):
            joinable = joinable and round(item.seconds * 1000) == 0
            continue
        i = next(at)
        said = spoken[i].spoken
        last = groups[-1] if groups else None
        if (joinable and last.ref is parts[i].ref and last.speed == parts[i].speed
                and (too_short(last.text) or too_short(said))):
            groups[-1] = replace(last, members=(*last.members, i), starts=(*last.starts, len(last.text) + 1),
                                 text=f"{last.text} {said}")
        else:
            groups.append(SampledText((i,), (0,), said, parts[i].ref, parts[i].speed))
        joinable = True
    return groups


def split_sampled(group: SampledText, outcome: tuple[SynthesisResult, GatedResult | None],
                  spoken: list[NormalizedText], align: Callable[[np.ndarray, int, str], Alignment]
                  ) -> list[tuple[SynthesisResult, GatedResult | None]]:
    """A sampling run's audio and alignment as each of its parts': the audio cut halfway between the last
    word of one part and the first of the next, each part's words timed in its own audio and offset in its
    own spoken text. A run not aligned by the quality gate is aligned here (``align``) to find the cuts.
    The run's chunks and retries stay with its first part, so that they add up once."""
    result, gated = outcome
    if len(group.members) == 1:
        return [outcome]
    rate = result.sample_rate
    found = gated.alignment if gated is not None else align(result.wave, rate, group.text)
    ends = [start + len(spoken[i].spoken) for start, i in zip(group.starts, group.members)]
    owned = [[n for n, w in enumerate(found.words) if start <= w.char_start < end]
             for start, end in zip(group.starts, ends)]
    cuts = [0]
    for k in range(1, len(group.members)):
        before, after = owned[k - 1], owned[k]
        if before and after:
            cut = round((found.words[before[-1]].end + found.words[after[0]].start) / 2 * rate)
        else:  # no word timed on one side (cannot happen with a part's letters or digits): by its share of text
            cut = round(len(result.wave) * group.starts[k] / len(group.text))
        cuts.append(min(max(cut, cuts[-1]), len(result.wave)))
    cuts.append(len(result.wave))
    out = []
    for k, (start, end) in enumerate(zip(group.starts, ends)):
        wave = result.wave[cuts[k]:cuts[k + 1]]
        place = (cuts[k] / rate, len(wave) / rate, start)
        first = owned[k][0] if owned[k] else 0
        alignment = replace(found, words=[_local(found.words[n], *place) for n in owned[k]],
                            chars=[_local(c, *place) for c in found.chars if start <= c.char_start < end],
                            flagged_words=[n - first for n in found.flagged_words if n in owned[k]],
                            align_seconds=found.align_seconds if k == 0 else 0.0)
        part_result = replace(result, wave=wave, chunks=result.chunks if k == 0 else [],
                              timing_ms=result.timing_ms if k == 0 else {})
        part_gated = None if gated is None else replace(gated, wave=wave, alignment=alignment,
                                                        retries=gated.retries if k == 0 else 0,
                                                        aligning_s=gated.aligning_s if k == 0 else 0.0)
        out.append((part_result, part_gated))
    return out


def _local(span: TimedSpan, offset: float, length: float, chars: int) -> TimedSpan:
    """A run's word or character as its part's: ``offset`` seconds and ``chars`` characters earlier, within
    the part's ``length`` seconds."""
    return replace(span, start=min(max(span.start - offset, 0.0), length), end=min(max(span.end - offset, 0.0), length),
                   char_start=span.char_start - chars, char_end=span.char_end - chars)
