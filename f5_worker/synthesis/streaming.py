"""A streamed synthesize job (``stream: true``): its items, one per piece of the text as soon as it is made,
then a last one with what only the whole gives.

Pieces are cut between words (tts/chunking.piece_end), so every word is timed in exactly one item. Each
piece is sampled, re-sampled by the quality gate while its audio does not say it, and aligned before it is
sent; the next piece is sampled meanwhile (queued as soon as this one's audio exists), so the sampler does
not wait for the alignment. The first piece is short; the later ones are sized by the stream's measured
speed (tts/chunking.StreamPacer) to be ready before the audio ahead of them has played. Pieces cannot be
cross-faded as the unstreamed job's chunks are (that would hold back the end of each piece until the next
exists), so each one fades in and out over ``EDGE_FADE_S`` instead and is padded to a whole millisecond:
played end to end the pieces meet at silence, without a click, and offsets and word times are exact
milliseconds.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from f5_worker import audio, delivery, stopping
from f5_worker.alignment.quality import synthesize_until_aligned
from f5_worker.errors import JobError
from f5_worker.limits import draw_seed
from f5_worker.logs import echo
from f5_worker.synthesis.joining import shifted
from f5_worker.synthesis.prepared import PreparedJob, add_times, finished_timing
from f5_worker.synthesis.script import ScriptPart, has_voices, spoken_text
from f5_worker.text.markup import Pause
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.tokens import token_spans
from f5_worker.text.written_timings import as_written
from f5_worker.timed_text import Alignment, TimedSpan
from f5_worker.timings import quality_field, timing_fields
from f5_worker.tts.chunking import (
    STREAM_ITEM_BYTES,
    StreamPacer,
    cut_long_readings,
    first_piece_end,
    max_piece_seconds,
    part_piece_seconds,
    pause_lengths_ms,
    piece_end,
    piece_limit_bytes,
    timing_bytes_per_byte,
)
from f5_worker.tts.sampler import PendingSynthesis, SynthesisParams, SynthesisResult

EDGE_FADE_S = 0.01  # each streamed piece fades in and out over this long, so pieces joined end to end meet at zero


@dataclass(frozen=True)
class _Piece:
    """A streamed piece: ``part.written[start:end]``, said as ``said``."""

    part: ScriptPart
    said: NormalizedText
    start: int
    end: int
    first: bool  # the stream's first piece


@dataclass(frozen=True)
class _Queued:
    """A piece handed to the sampler: how it is sampled (and re-sampled by the gate), and its first audio."""

    piece: _Piece
    params: SynthesisParams
    pending: PendingSynthesis


@dataclass(frozen=True)
class _PieceAudio:
    """A piece as it is sent: its faded audio, its alignment (None where the job wants none), the seed of the
    audio kept, its re-samplings, and the milliseconds its stages took."""

    wave: np.ndarray
    alignment: Alignment | None
    seed: int
    retries: int
    stage_ms: dict[str, float]


def stream(job: PreparedJob) -> Iterator[dict]:
    """The job's items: each piece's audio with its timings as soon as it is made, each pause as an item of
    silence, then ``done`` (captions, quality, timing, a link to the whole where a bucket takes it)."""
    request, sample_rate = job.request, job.models.sample_rate
    labelled = has_voices(request, job.parts)
    retry_seeds = random.Random(job.params.seed)
    pacer = StreamPacer(max_piece_seconds(audio.BYTES_PER_SAMPLE[request.output_format], sample_rate))

    def timing_bytes(part: ScriptPart) -> float:  # the timings its items carry, per byte said
        label_bytes = len(json.dumps(part.labels())) if labelled else 0
        return timing_bytes_per_byte(request.word_timings, request.char_timings, label_bytes)

    steps = stream_steps(job.script, job.language, request.normalize, pacer, request.segments is not None,
                         timing_bytes)
    upcoming: deque[Pause | _Queued] = deque()  # cut, not yet sent: pauses, and at most one piece, sampling

    def queue_next_piece() -> None:
        for step in steps:
            if isinstance(step, Pause):
                upcoming.append(step)
                continue
            # the stream's first piece is sampled before all else
            params = replace(job.params, speed=step.part.speed, first_audio=step.first)
            upcoming.append(_Queued(step, params, job.engine.submit(step.part.ref, step.said.spoken, params)))
            return

    timing = job.timing
    waves: list[np.ndarray] = []
    words: list[TimedSpan] = []
    spoken_texts: list[str] = []
    alignments: list[tuple[Alignment, float, int]] = []  # per piece: alignment, duration, retries
    offset_samples = seq = 0
    queue_next_piece()
    try:
        while upcoming:
            step = upcoming.popleft()
            stopping.check("sampling")
            offset = offset_samples / sample_rate
            if isinstance(step, Pause):  # exact silence, in whole milliseconds as every item is
                whole = _whole_ms(sample_rate)
                wave = np.zeros(-(-round(step.seconds * 1000) * sample_rate // (1000 * whole)) * whole, dtype=np.float32)
                pacer.made(len(wave) / sample_rate, piece=False)
                item = {"offset": round(offset, 3), "duration": round(len(wave) / sample_rate, 3),
                        "pause": round(len(wave) / sample_rate, 3)}
            else:
                piece = step.piece
                first = step.pending.result()
                pacer.sampled(step.pending.sampled_in_s, len(first.wave) / sample_rate, piece.part.ref.duration)
                pacer.made(len(first.wave) / sample_rate)
                queue_next_piece()  # sampled while this one is aligned
                spoken_texts.append(piece.said.spoken.strip())  # a cut reading leaves a space
                made = _piece_audio(job, step, first, retry_seeds)
                timing = add_times(timing, made.stage_ms)
                wave = made.wave
                duration = len(wave) / sample_rate
                if made.alignment is not None:
                    pacer.aligned(made.alignment.align_seconds, duration)
                part = piece.part
                at = part.char_offset + piece.start
                item = {"offset": round(offset, 3), "duration": round(duration, 3),
                        "text_start": at, "text_end": part.char_offset + piece.end, "seed": made.seed}
                label = part.labels() if labelled else {}
                item.update(label)
                if made.alignment is not None:
                    written = as_written(piece.said, made.alignment)
                    placed = [shifted(w, offset, at, offset + duration, **label) for w in written.words]
                    words.extend(placed)
                    alignments.append((written, duration, made.retries))
                    if request.word_timings:
                        item["words"] = [w.to_dict() for w in placed]
                    if request.char_timings:
                        item["chars"] = [shifted(c, offset, at, offset + duration, **label).to_dict()
                                         for c in written.chars]
            stopping.check("encoding")
            t0 = time.perf_counter()
            encoded = audio.encode_audio(wave, sample_rate, request.output_format)
            timing = add_times(timing, {"encoding": (time.perf_counter() - t0) * 1000})
            if seq == 0:
                timing = {**timing, "first_audio_ms": (time.perf_counter() - job.started) * 1000}
            waves.append(wave)
            offset_samples += len(wave)
            pacer.handed_out(time.perf_counter())
            yield {"seq": seq, "audio_base64": base64.b64encode(encoded).decode("ascii"),
                   "format": request.output_format, "content_type": audio.content_type(request.output_format),
                   "sample_rate": sample_rate, **item}
            seq += 1
    finally:  # stopped, failed or closed: a piece queued ahead is not sampled for nobody
        for step in upcoming:
            if isinstance(step, _Queued):
                step.pending.cancel()
    done = _done(job, seq=seq, waves=waves, words=words, alignments=alignments, timing=timing)
    done = {**done, "language": job.language, "normalized_text": " ".join(spoken_texts)}
    if delivery.inline_size(done) > STREAM_ITEM_BYTES - delivery.LAST_ITEM_ROOM_BYTES:
        stopping.check("upload")
        delivery.fit_last_item(done, max_bytes=STREAM_ITEM_BYTES, stores=job.stores, job_id=job.job.id,
                               upload=request.output != "inline")
    yield done


def _piece_audio(job: PreparedJob, queued: _Queued, first: SynthesisResult, retry_seeds: random.Random
                 ) -> _PieceAudio:
    """One streamed piece from its first sampling (``first``): faded at its ends, and, when timings or
    retries are wanted, aligned and re-sampled by the quality gate until it says its text. Its re-samplings
    draw their seeds from the stream's ``retry_seeds``."""
    piece, params = queued.piece, queued.params
    stage_ms: dict[str, float] = {}
    unread = [first]

    def sample(indices: list[int], seed: int) -> list[tuple[np.ndarray, int]]:
        result = unread.pop() if unread else job.engine.synthesize(piece.part.ref, piece.said.spoken,
                                                                   replace(params, seed=seed))
        for stage, ms in result.timing_ms.items():
            stage_ms[stage] = stage_ms.get(stage, 0.0) + ms
        stopping.check("alignment")
        return [(_faded(result.wave, result.sample_rate), result.sample_rate)]

    if not job.aligns:
        return _PieceAudio(sample([0], params.seed)[0][0], None, params.seed, 0, stage_ms)
    gated, = synthesize_until_aligned(
        [piece.said.spoken], sample, job.aligner, seed=params.seed, max_retries=job.request.max_retries,
        language=job.language, new_seed=lambda: draw_seed(retry_seeds),
    )
    stage_ms["alignment"] = gated.aligning_s * 1000
    return _PieceAudio(gated.wave, gated.alignment, gated.seed, gated.retries, stage_ms)


def _done(job: PreparedJob, *, seq: int, waves: list[np.ndarray], words: list[TimedSpan],
          alignments: list[tuple[Alignment, float, int]], timing: dict[str, float]) -> dict:
    """The last item of a streamed job: what only the whole gives (captions, quality, timing, a link)."""
    request, sample_rate, stores = job.request, job.models.sample_rate, job.stores
    duration = sum(len(w) for w in waves) / sample_rate
    out: dict = {"seq": seq, "done": True, "pieces": len(waves), "duration": round(duration, 3),
                 "sample_rate": sample_rate, "format": request.output_format, "seed": job.params.seed,
                 "model": job.models.name}
    if alignments:
        t0 = time.perf_counter()
        whole = Alignment(words=words, chars=[], score=0.0, backend=alignments[0][0].backend,
                          estimated=any(a.estimated for a, _, _ in alignments))
        options = request.model_copy(update={"word_timings": False, "char_timings": False})
        out.update(timing_fields(whole, options, duration, speaker_prefix=job.settings.caption_speaker_prefix))
        out["quality"] = quality_field(alignments)
        timing = add_times(timing, {"captions": (time.perf_counter() - t0) * 1000})
    if request.output != "inline" and stores.bucket is not None:
        stopping.check("upload")
        whole_audio = audio.encode_audio(np.concatenate(waves), sample_rate, request.output_format)
        name = f"speech.{request.output_format}"
        links = delivery.upload_result(stores, job.job.id, [delivery.ResultFile(
            name, whole_audio, audio.content_type(request.output_format))])
        out.update(audio_url=links[name]["url"], files=links, expires_in=stores.settings.url_expiry_s)
    out["timing"] = finished_timing(timing, job.started, time.perf_counter(), duration)
    out["warnings"] = job.voice_warnings()
    return out


def _faded(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A streamed piece as sent: raised-cosine fades of ``EDGE_FADE_S`` at both ends, padded with silence to
    a whole millisecond (_whole_ms), so pieces played one after another meet at zero and offsets stay exact."""
    wave = audio.fade_edges(wave, sample_rate, EDGE_FADE_S)
    pad = -len(wave) % _whole_ms(sample_rate)
    return np.concatenate([wave, np.zeros(pad, dtype=np.float32)]) if pad else wave


def _whole_ms(sample_rate: int) -> int:
    """The fewest samples that last a whole number of milliseconds: 24 at 24 kHz, 441 (10 ms) at 44.1 kHz. Every
    item is a multiple of it, so every offset is exact; it was ``sample_rate // 1000`` (44 samples at 44.1 kHz,
    not a millisecond), and "[pause:1s]" lasted 0.998 s."""
    return sample_rate // math.gcd(sample_rate, 1000)


def stream_steps(script: list[ScriptPart | Pause], language: str, normalize: bool, pacer: StreamPacer,
                 segments: bool = False, timing_bytes: Callable[[ScriptPart], float] = lambda part: 0.0
                 ) -> Iterator[Pause | _Piece]:
    """A streamed job's pauses and pieces, each piece cut only when asked for, so that its size follows what
    the stream has measured by then. Each part is said once, as the unstreamed job says it, and pieces never
    cut inside one reading (``uncut_spans``) but one said longer than an item holds (``cut_long_readings``).
    The parts are read here, before the first item: a text that cannot be read, or cut into items RunPod
    takes, fails the job before any audio is sent, not in the middle of the stream. ``timing_bytes``: the bytes
    of timings a part's items carry per byte said (chunking.timing_bytes_per_byte), which its pieces make room
    for."""
    plan: list[Pause | tuple[ScriptPart, NormalizedText, list[tuple[int, int]], float]] = []
    for item in script:
        if isinstance(item, Pause):
            if round(item.seconds * 1000):  # a pause of no whole millisecond (strength="none") sends no item
                plan.append(item)
            continue
        said = spoken_text(item.written, language, normalize, item.starts_line)
        words = said.uncut_spans(token_spans(item.written))
        most = part_piece_seconds(item.ref, item.speed, pacer.max_seconds, timing_bytes(item))
        limit = piece_limit_bytes(item.ref, item.speed, most)
        said, tokens = cut_long_readings(said, words, limit)
        for a, b in tokens:
            if len(said.spoken[said.to_spoken(a):said.to_spoken(b)].strip().encode("utf-8")) > limit:
                start, end = next((s, e) for s, e in words if s <= a < e)
                field = f"segments.{item.segment}.text" if segments else "text"
                raise JobError(field, f"{echo(item.written[start:end])} at character {item.char_offset + start} is "
                                      f"said longer than one streamed item holds ({most:.0f} s) and "
                                      "cannot be cut into parts that do; write it in shorter words, or leave stream out")
        plan.append((item, said, tokens, most))
    return _cut_lazily(plan, pacer)


def _glued(said: NormalizedText, tokens: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``tokens`` with each run of words that say nothing (emoji, "&nbsp;": no letter or digit in what is said
    for them) joined to the word that says something after it, or, at the end of the part, before it.

    A piece of them alone would be sampled from no text at all. Joined after the pieces were cut (the whole
    rest of a part, if it said nothing, went with the piece before), their words and characters were timed in
    an item sized without them: 1,500 emoji after a full piece made an item of 1.2 MB, which RunPod drops.
    Joined before, each is counted in its piece's size by what is said for it (at least the space after it),
    which makes room for more than its timings."""
    def says(start: int, end: int) -> bool:
        return any(ch.isalnum() for ch in said.spoken[said.to_spoken(start):said.to_spoken(end)])

    glued: list[tuple[int, int]] = []
    run_start = None  # where the run of words that say nothing, not yet joined, starts
    for start, end in tokens:
        if not says(start, end):
            run_start = start if run_start is None else run_start
            continue
        glued.append((start if run_start is None else run_start, end))
        run_start = None
    if run_start is not None:  # the part ends with them: the word before takes them (or they are all it has)
        glued[-1:] = [(glued[-1][0] if glued else run_start, tokens[-1][1])]
    return glued


def _cut_lazily(plan: list, pacer: StreamPacer) -> Iterator[Pause | _Piece]:
    first = True
    for step in plan:
        if isinstance(step, Pause):  # a long one (adjacent pauses add up) in as many items as it fills
            for ms in pause_lengths_ms(round(step.seconds * 1000), pacer.max_seconds):
                yield Pause(ms / 1000, step.char_start)
            continue
        part, said, tokens, most = step  # most: the seconds one of its items holds
        tokens = _glued(said, tokens)
        if not tokens:
            if part.written.strip():
                yield _Piece(part, said, 0, len(part.written), first)
                first = False
            continue
        i = 0
        while i < len(tokens):
            # the first piece is a few words, but no more than one item carries: a few numbers are said long
            seconds = most if first else pacer.next_seconds(time.perf_counter(), part.ref.duration)
            j = piece_end(part.ref, part.written, part.speed, tokens, i, seconds, most, said)
            if first:
                j = min(j, first_piece_end(part.written, tokens, said))
            yield _Piece(part, said.within(tokens[i][0], tokens[j - 1][1]), tokens[i][0], tokens[j - 1][1], first)
            first = False
            i = j
