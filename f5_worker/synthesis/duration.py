"""A target ``duration``: the job's length spread over every chunk of every sampling run.

The length is shared in proportion to each chunk's text (upstream's ``fix_duration`` gives the whole length
to each chunk and cannot span several references), so the implied speed is the same for all of them and
checked once, before anything is sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from f5_worker.errors import JobError
from f5_worker.limits import MAX_SPEED, MIN_SPEED
from f5_worker.synthesis.runs import SampledText
from f5_worker.tts.chunking import plan_chunks
from f5_worker.tts.reference import PreparedReference


def natural_frames(ref: PreparedReference, text: str, hop_length: int) -> float:
    """Generated frames for ``text`` at speed 1, as upstream sizes a chunk (tts/chunking.chunk_frames)."""
    ref_frames = len(ref.wave) // hop_length
    return ref_frames / len(ref.text.encode("utf-8")) * len(text.encode("utf-8"))


def _out_of_range(speed: float) -> str:
    """A refused speed as the message quotes it: rounded away from the allowed range, never into it (3.03 is
    not "3.0"), and with a digit that is not zero however slow."""
    if speed > MAX_SPEED:
        return f"{math.ceil(speed * 100) / 100:g}"
    return f"{math.floor(speed * 100) / 100:g}" if speed >= 0.01 else f"{speed:.1g}"


def fit_duration(runs: Sequence[SampledText], pause_samples: int, target_s: float, *, sample_rate: int,
                 hop_length: int, cross_fade_s: float) -> list[SampledText]:
    """The runs with ``target_s`` spread over their chunks in proportion to their text: each with the
    ``speed`` this implies (the same for all) and its chunks' ``chunk_frames``.

    Refuses (``duration: ...``) a target that would need a speed outside ``MIN_SPEED``-``MAX_SPEED``.
    Lengths are whole frames; the total is within one frame of the target (cross-fades between chunks
    overlap ``cross_fade_s`` each and are added back).
    """
    natural = [natural_frames(r.ref, r.text, hop_length) for r in runs]
    speech_samples = target_s * sample_rate - pause_samples
    natural_s = sum(natural) * hop_length / sample_rate
    pause_s = pause_samples / sample_rate
    shortest, longest = natural_s / MAX_SPEED + pause_s, natural_s / MIN_SPEED + pause_s
    needs = f"the text needs between {math.ceil(shortest * 10) / 10:g} and {math.floor(longest * 10) / 10:g} s"
    if speech_samples <= 0:
        raise JobError("duration", f"{target_s:g} s leaves no time to speak after {pause_s:g} s of pauses; {needs}")
    speed = natural_s / (speech_samples / sample_rate)
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise JobError("duration", f"{target_s:g} s would need speed {_out_of_range(speed)}; {needs}")
    chunked = [plan_chunks(r.ref, r.text, speed) for r in runs]
    overlap = int(cross_fade_s * sample_rate)
    joins = sum(max(len(c) - 1, 0) for c in chunked) * overlap
    total_frames = max(round((speech_samples + joins) / hop_length), sum(len(c) for c in chunked))
    weights = [natural_frames(r.ref, c, hop_length) for r, cs in zip(runs, chunked) for c in cs]
    # Vocos gives (frames - 1) × hop samples for a chunk's frames (its ISTFT is centred): one more frame each
    frames = [n + 1 for n in _largest_remainder(weights, total_frames)]
    fitted, at = [], 0
    for run, chunks in zip(runs, chunked):
        fitted.append(replace(run, speed=speed, chunk_frames=tuple(frames[at:at + len(chunks)])))
        at += len(chunks)
    return fitted


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """``total`` split into whole numbers in proportion to ``weights`` (each at least 1)."""
    whole = sum(weights) or 1.0
    exact = [total * w / whole for w in weights]
    out = [max(1, int(x)) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    for i in order[:max(total - sum(out), 0)]:
        out[i] += 1
    return out
