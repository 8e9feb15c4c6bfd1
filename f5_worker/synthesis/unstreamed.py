"""A synthesize job's whole result at once: the script's parts sampled, gated, joined, timed and encoded.

The path: each part as it is said (text/normalize.py) -> the sampling runs (runs.py: a part, or short parts
of one voice joined) -> a target duration spread over them (duration.py) -> the delivery plan, refused
before any GPU time if the result could not be delivered -> sampling in as few engine calls as the runs fit,
aligned and re-sampled while the audio does not say its text (alignment/quality.py) -> the runs cut back
into their parts -> the parts joined with their pauses, timings mapped back to the text as written
(joining.py) -> captions -> encoding.
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, replace

import numpy as np

from f5_worker import audio, delivery, progress, stopping
from f5_worker.alignment.quality import GatedResult, align_audio, synthesize_until_aligned
from f5_worker.limits import draw_seed
from f5_worker.synthesis.duration import fit_duration
from f5_worker.synthesis.joining import join_script
from f5_worker.synthesis.prepared import PreparedJob, add_times, finished_timing
from f5_worker.synthesis.runs import MAX_RUNS_PER_CALL, SampledText, sampled_texts, split_sampled
from f5_worker.synthesis.script import has_voices, spoken_text
from f5_worker.text.markup import Pause
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.timed_text import Alignment
from f5_worker.timings import timing_bytes_bound, timing_fields
from f5_worker.tts.chunking import estimated_samples, plan_chunks
from f5_worker.tts.sampler import SynthesisResult


@dataclass(frozen=True)
class Speech:
    """A synthesize job's result before it is delivered: the encoded audio and every other field of the
    response, in the order the response gives them (``fields``: ``normalized_text``, then the timing fields
    and ``quality`` where the aligner ran). ``planned``: "inline" or "bucket", decided before sampling."""

    audio: bytes
    format: str
    content_type: str
    sample_rate: int
    duration: float
    seed: int
    chunks: int
    model: str
    language: str
    fields: dict
    timing: dict[str, float]  # milliseconds per stage, the whole job's (total_ms), and the real-time factor
    warnings: list[str]
    planned: str

    def audio_fields(self) -> dict:
        """The audio inline, as every answer that carries it begins: base64, format, type, rate and length."""
        return {"audio_base64": base64.b64encode(self.audio).decode("ascii"), "format": self.format,
                "content_type": self.content_type, "sample_rate": self.sample_rate,
                "duration": round(self.duration, 4)}

    def timed_words(self) -> dict:
        """The ``words`` (and ``chars``) fields, where the job asked for them."""
        return {name: self.fields[name] for name in ("words", "chars") if name in self.fields}


def speak(job: PreparedJob) -> Speech:
    """The job's audio and fields, sampled, gated, joined and encoded."""
    request, models = job.request, job.models
    sample_rate = models.sample_rate
    spoken = [spoken_text(part.written, job.language, request.normalize, part.starts_line) for part in job.parts]
    runs = sampled_texts(job.script, job.parts, spoken)  # what each sampling run speaks
    pauses = {id(item): round(item.seconds * sample_rate) for item in job.script if isinstance(item, Pause)}
    if request.duration is not None:
        runs = fit_duration(runs, sum(pauses.values()), request.duration, sample_rate=sample_rate,
                            hop_length=models.hop_length, cross_fade_s=request.cross_fade_duration)
    chunks = [plan_chunks(run.ref, run.text, run.speed) for run in runs]
    planned = check_result_fits(job, runs, chunks, spoken, sum(pauses.values()))
    planned_seconds = sum(estimated_samples(r.ref, c, r.speed, models.hop_length)
                          for r, c in zip(runs, chunks)) / sample_rate
    reports = planned_seconds >= progress.MIN_AUDIO_SECONDS and len(runs) == 1
    outcomes, stage_ms = sample_runs(job, runs, sum(len(c) for c in chunks) if reports else 0)
    timing = add_times(job.timing, stage_ms)

    def align(wave: np.ndarray, rate: int, text: str) -> Alignment:
        nonlocal timing
        found = align_audio(job.aligner, wave, rate, text, language=job.language)
        timing = add_times(timing, {"alignment": found.align_seconds * 1000})
        return found

    per_part = [o for run, outcome in zip(runs, outcomes) for o in split_sampled(run, outcome, spoken, align)]
    joined = join_script(job.script, job.parts, spoken, per_part, pauses, sample_rate,
                         has_voices(request, job.parts))
    duration = len(joined.wave) / sample_rate

    fields: dict = {"normalized_text": joined.normalized_text}
    if joined.alignment is not None:
        t0 = time.perf_counter()
        fields.update(timing_fields(joined.alignment, request, duration,
                                    speaker_prefix=job.settings.caption_speaker_prefix))
        if request.word_timings:
            fields["normalized_words"] = [w.to_dict() for w in joined.normalized.words]
        if request.char_timings:
            fields["normalized_chars"] = [c.to_dict() for c in joined.normalized.chars]
        fields["quality"] = joined.quality
        timing = add_times(timing, {"captions": (time.perf_counter() - t0) * 1000})

    stopping.check("encoding")
    t0 = time.perf_counter()
    encoded = audio.encode_audio(joined.wave, sample_rate, request.output_format)
    timing = add_times(timing, {"encoding": (time.perf_counter() - t0) * 1000})
    return Speech(
        audio=encoded, format=request.output_format, content_type=audio.content_type(request.output_format),
        sample_rate=sample_rate, duration=duration,
        seed=outcomes[0][0].seed if len(outcomes) == 1 else job.params.seed,  # one run: the seed of the audio kept
        chunks=sum(len(result.chunks) for result, _ in outcomes), model=models.name, language=job.language,
        fields=fields, timing=finished_timing(timing, job.started, time.perf_counter(), duration),
        warnings=job.voice_warnings(), planned=planned,
    )


def sample_runs(job: PreparedJob, runs: list[SampledText], report_chunks: int
                ) -> tuple[list[tuple[SynthesisResult, GatedResult | None]], dict[str, float]]:
    """Every run sampled and, where the job wants timings, captions or retries, gated: in rounds
    (alignment/quality.synthesize_until_aligned), each round in as few engine calls as hold
    ``MAX_RUNS_PER_CALL`` runs, the first round holding every run and each later one the runs whose audio
    did not say their text, with a new seed. Retry seeds come from a generator seeded with the job's seed,
    so a request with a seed is reproducible as a whole.

    Returns each run's audio kept (with its gated attempt, or None), and the stages' milliseconds: the first
    round's ``synthesis`` and ``vocoding``, the kept audio's ``postprocess``, and where gated every
    attempt's ``alignment`` and the later rounds' sampling as ``retries``. A long job of one run
    (``report_chunks``: its chunks) reports each attempt's sampling and alignment as it starts (progress.py).
    """
    engine, params = job.engine, job.params
    aligns = job.aligns
    total = 1 + (job.request.max_retries if aligns else 0)
    rounds: list[dict[int, SynthesisResult]] = []  # what each round sampled, by run

    def note(stage: str, attempt: int, **extra) -> None:
        if report_chunks:
            progress.report({"stage": stage, "attempt": attempt, "of": total, "chunks": report_chunks, **extra})

    def sample(indices: list[int], seed: int) -> list[tuple[np.ndarray, int]]:
        note("sampling", len(rounds) + 1)
        done: dict[int, SynthesisResult] = {}
        for at in range(0, len(indices), MAX_RUNS_PER_CALL):
            stopping.check("sampling")
            call = indices[at:at + MAX_RUNS_PER_CALL]
            done.update(zip(call, engine.synthesize_parts(
                [(runs[i].ref, runs[i].text, replace(params, seed=seed, speed=runs[i].speed,
                                                     chunk_frames=runs[i].chunk_frames)) for i in call])))
        rounds.append(done)
        if aligns:
            stopping.check("alignment")
            first = done[indices[0]]
            note("aligning", len(rounds), audio_seconds=round(len(first.wave) / first.sample_rate, 3))
        return [(done[i].wave, done[i].sample_rate) for i in indices]

    if aligns:
        retry_seeds = random.Random(params.seed)
        gated = synthesize_until_aligned([run.text for run in runs], sample, job.aligner, seed=params.seed,
                                         max_retries=job.request.max_retries, language=job.language,
                                         new_seed=lambda: draw_seed(retry_seeds))
        kept = [rounds[g.attempt][i] for i, g in enumerate(gated)]
    else:
        sample(list(range(len(runs))), params.seed)
        gated, kept = [None] * len(runs), [rounds[0][i] for i in range(len(runs))]
    # each call's sampling and vocoding times are on its first result: summed over a round, they add up once
    stage_ms = {stage: sum(r.timing_ms.get(stage, 0.0) for r in rounds[0].values())
                for stage in ("synthesis", "vocoding")}
    stage_ms["postprocess"] = sum(r.timing_ms.get("postprocess", 0.0) for r in kept)
    if aligns:
        stage_ms["alignment"] = sum(g.aligning_s for g in gated) * 1000
        stage_ms["retries"] = sum(r.timing_ms.get("synthesis", 0.0) + r.timing_ms.get("vocoding", 0.0)
                                  for done in rounds[1:] for r in done.values())
    return list(zip(kept, gated)), stage_ms


def check_result_fits(job: PreparedJob, runs: list[SampledText], chunks: list[list[str]],
                      spoken: list[NormalizedText], pause_samples: int) -> str:
    """Before synthesis: "inline" or "bucket" delivery; refuses a result that could not be delivered."""
    request, hop = job.request, job.models.hop_length
    samples = pause_samples + sum(
        sum(r.chunk_frames) * hop if r.chunk_frames is not None
        else estimated_samples(r.ref, c, r.speed, hop) for r, c in zip(runs, chunks))
    # the written words and the spoken ones (normalized_words), the spoken text's as said
    said = " ".join(s.spoken for s in spoken)
    timing = timing_bytes_bound(request.script_text, said, request)
    asked = tuple(name for name, value in (("char_timings", request.char_timings),
                                           ("caption_formats", request.caption_formats)) if value)
    return delivery.plan_output(
        request.output, estimated_bytes=audio.estimated_encoded_bytes(samples, request.output_format) + timing,
        stores=job.stores, max_inline_bytes=job.settings.max_inline_bytes,
        what=f"{samples / job.models.sample_rate:.0f} s of {request.output_format}",
        audio_format=request.output_format, timing_bytes=timing, timing_fields=asked,
    )
