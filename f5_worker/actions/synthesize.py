"""The ``synthesize`` action: text in the reference's voice, with its timings, captions and quality.

The path of a job: the script (actions/script.py: the text's parts, each with
its voice, and its pauses) -> each voice's reference (a stored voice, the
client's clip, or the default voice) -> each part as it is said
(text/normalize.py) -> the delivery plan, refused before any GPU time if the
result could not be delivered -> sampling (tts/sampler.py; a script's parts in
calls of up to 32, a short part joined by its voice's neighbours:
script.sampled_texts), aligned on what was said and re-sampled while the
audio does not say it (alignment/quality.py) -> the parts joined with their pauses, timings
mapped back to the text as written -> captions -> encoding -> inline or bucket
delivery (delivery.py). A text without markup is one part, as before.

A streamed job (``stream: true``) takes the same path piece by piece
(``SynthesizeAction.stream``): each piece of the text is sampled, gated and
aligned on its own and sent as soon as it is ready, and a last item carries
what only the whole can give (captions, quality, timing).
"""

from __future__ import annotations

import base64
import contextvars
import random
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from f5_worker import audio, delivery, progress, stopping
from f5_worker.actions.script import (
    MAX_PARALLEL_PARTS,
    MAX_RUNS_PER_CALL,
    ResolvedScript,
    SampledText,
    ScriptPart,
    VoiceSource,
    as_written,
    fit_duration,
    has_voices,
    join_script,
    sampled_texts,
    shifted,
    split_sampled,
    spoken_text,
    tag_voice_error,
)
from f5_worker.alignment.aligner import Aligner
from f5_worker.alignment.quality import (
    GatedResult,
    align_audio,
    kept_attempt,
    passes_gate,
    synthesize_until_aligned,
)
from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.fetch import DownloadLimits
from f5_worker.logs import echo
from f5_worker.schema import ReferenceAudio, SynthesizeRequest
from f5_worker.storage.stores import Stores
from f5_worker.text.languages import guess_language
from f5_worker.text.markup import Pause
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.tokens import tokenize
from f5_worker.timed_text import Alignment, TimedSpan
from f5_worker.timings import quality_field, timing_bytes_bound, timing_fields
from f5_worker.tts.chunking import (
    STREAM_ITEM_BYTES,
    StreamPacer,
    cut_long_readings,
    estimated_samples,
    first_piece_end,
    max_piece_seconds,
    pause_lengths_ms,
    piece_end,
    piece_limit_bytes,
    plan_chunks,
)
from f5_worker.tts.reference import PreparedReference, ReferencePreparer, prepare_reference
from f5_worker.tts.sampler import PendingSynthesis, SynthesisEngine, SynthesisParams, SynthesisResult
from f5_worker.voices import VoiceInfo, VoiceStore

MAX_RANDOM_SEED = 2**31 - 1  # seeds drawn for jobs that give none
EDGE_FADE_S = 0.01  # each streamed piece fades in and out over this long, so pieces joined end to end meet at zero


class SynthesizeAction:
    def __init__(self, settings: Settings, engine: SynthesisEngine, aligner: Aligner, voices: VoiceStore,
                 stores: Stores, downloads: DownloadLimits, references: ReferencePreparer | None = None,
                 model_languages: tuple[str, ...] = ()):
        self.settings = settings
        self.model_languages = model_languages  # the model's registry entry: what it was trained to speak
        self.downloads = downloads
        self.engine = engine
        self.models = engine.models
        self.aligner = aligner
        self.voices = voices
        self.stores = stores
        self.references = references or ReferencePreparer(max_input_seconds=settings.max_ref_audio_seconds,
                                                           keep_seconds=settings.ref_audio_keep_seconds)

    def __call__(self, request: SynthesizeRequest, resolved: ResolvedScript, job_id: str | None = None) -> dict:
        """The job's result. ``resolved``: its script, model and language (script.resolve_script); the model is this one."""
        started = time.perf_counter()
        timing: dict[str, float] = {}
        script, parts, language = self.script_with_voices(request, resolved, timing)
        spoken = [spoken_text(part.written, language, request.normalize) for part in parts]
        runs = sampled_texts(script, parts, spoken)  # what each sampling run speaks: a part, or short parts joined
        sample_rate = self.models.sample_rate
        pauses = {id(item): round(item.seconds * sample_rate) for item in script if isinstance(item, Pause)}
        if request.duration is not None:
            fit_duration(runs, [r.text for r in runs], sum(pauses.values()), request.duration,
                         sample_rate=sample_rate, hop_length=self.models.hop_length,
                         cross_fade_s=request.cross_fade_duration)
        chunks = [plan_chunks(run.ref, run.text, run.speed) for run in runs]
        planned = self.check_result_fits(request, runs, chunks, spoken, sum(pauses.values()))

        seed = request.seed if request.seed is not None else random.randint(0, MAX_RANDOM_SEED)
        params = SynthesisParams(
            nfe_step=request.nfe_step,
            cfg_strength=request.cfg_strength,
            sway_sampling_coef=request.sway_sampling_coef,
            speed=request.speed,
            cross_fade_duration=request.cross_fade_duration,
            remove_silence=request.remove_silence,
            seed=seed,
            job_started=started,  # the sampler serves older jobs' work first (tts/sampler.py)
        )
        # every run in the job's seed: a script's runs are sampled in as few calls as they fit, seeded once
        run_params = [replace(params, speed=run.speed, chunk_frames=run.chunk_frames) for run in runs]
        planned_seconds = (sum(estimated_samples(r.ref, c, r.speed, self.models.hop_length)
                               for r, c in zip(runs, chunks)) / sample_rate)
        reports = planned_seconds >= progress.MIN_AUDIO_SECONDS and len(runs) == 1
        outcomes = self._synthesize_parts(request, runs, run_params, language,
                                          sum(len(c) for c in chunks) if reports else 0)
        for result, _ in outcomes:
            for stage, ms in result.timing_ms.items():
                timing[f"{stage}_ms"] = timing.get(f"{stage}_ms", 0.0) + ms

        def align(wave: np.ndarray, rate: int, text: str) -> Alignment:
            found = align_audio(self.aligner, wave, rate, text, language=language)
            timing["alignment_ms"] = timing.get("alignment_ms", 0.0) + found.align_seconds * 1000
            return found

        per_part = [o for run, outcome in zip(runs, outcomes) for o in split_sampled(run, outcome, spoken, align)]
        joined = join_script(script, parts, spoken, per_part, pauses, sample_rate, has_voices(request, parts))
        duration = len(joined.wave) / sample_rate

        extra: dict = {"normalized_text": joined.normalized_text}
        if joined.alignment is not None:
            t0 = time.perf_counter()
            extra.update(timing_fields(joined.alignment, request, duration,
                                       speaker_prefix=self.settings.caption_speaker_prefix))
            if request.word_timings:
                extra["normalized_words"] = [w.to_dict() for w in joined.normalized.words]
            if request.char_timings:
                extra["normalized_chars"] = [c.to_dict() for c in joined.normalized.chars]
            extra["quality"] = joined.quality
            timing["captions_ms"] = (time.perf_counter() - t0) * 1000

        stopping.check("encoding")
        t0 = time.perf_counter()
        encoded = audio.encode_audio(joined.wave, sample_rate, request.output_format)
        audio_b64 = base64.b64encode(encoded).decode("ascii")
        timing["encoding_ms"] = (time.perf_counter() - t0) * 1000

        timing["total_ms"] = (time.perf_counter() - started) * 1000
        out = {
            "audio_base64": audio_b64,
            "format": request.output_format,
            "content_type": audio.content_type(request.output_format),
            "sample_rate": sample_rate,
            "duration": round(duration, 4),
            "seed": outcomes[0][0].seed if len(outcomes) == 1 else seed,  # one run: the seed of the audio kept
            "chunks": sum(len(result.chunks) for result, _ in outcomes),
            "model": self.models.name,
            "language": language,
            **extra,
            "timing": {k: round(v, 2) for k, v in timing.items()},
            "warnings": _voice_warnings(parts),
        }
        out["timing"]["rtf"] = round(timing["total_ms"] / 1000 / max(duration, 1e-6), 4)
        return delivery.finish_output(
            out, planned=planned, job_id=job_id, stores=self.stores, max_inline_bytes=self.settings.max_inline_bytes,
            audio_bytes=encoded, audio_format=request.output_format, audio_content_type=out["content_type"],
        )

    def script_with_voices(self, request: SynthesizeRequest, resolved: ResolvedScript, timing: dict[str, float]
                           ) -> tuple[list[ScriptPart | Pause], list[ScriptPart], str]:
        """The job's script, its parts with their voices loaded (the time it took in ``timing``), and its language."""
        language = self.language_for(resolved)
        t0 = time.perf_counter()
        self.load_voices(request, resolved)
        timing["reference_ms"] = (time.perf_counter() - t0) * 1000
        return resolved.items, resolved.parts, language

    def load_voices(self, request: SynthesizeRequest, resolved: ResolvedScript) -> None:
        """Each part's prepared reference, each voice loaded once, from the metadata the job has read."""
        loaded: dict[VoiceSource, PreparedReference] = {}
        for part in resolved.parts:
            if part.source not in loaded:
                try:
                    loaded[part.source] = self.reference_for(part.source, request.target_rms, part.source.prefix,
                                                             resolved.voice_infos.get(part.source.voice))
                except JobError as exc:
                    if part.source.tag_at is None:
                        raise
                    raise tag_voice_error(exc, part.source) from None
            part.ref = loaded[part.source]

    def _synthesize_parts(self, request: SynthesizeRequest, runs: list[SampledText], params: list[SynthesisParams],
                          language: str, report_chunks: int) -> list[tuple[SynthesisResult, GatedResult | None]]:
        """Every run (a part, or short parts joined: script.sampled_texts) sampled and gated. A script's runs are
        sampled in rounds, each in as few engine calls as hold ``MAX_RUNS_PER_CALL`` runs (tts/sampler.
        synthesize_parts): the first round holds every run; each later one only the runs whose audio did not say
        their text, with a new seed, as the quality gate re-samples a single text. The runs of a round are
        aligned concurrently, each run keeping its best attempt."""
        if len(runs) == 1:
            return [self._synthesize_gated(request, runs[0].ref, runs[0].text, params[0], language, report_chunks)]
        spent: dict[str, float] = {}  # the calls' sampling and vocoding times, summed over each round's calls

        def sample(indices: list[int], seed: int) -> dict[int, SynthesisResult]:
            results: dict[int, SynthesisResult] = {}
            spent.clear()
            for at in range(0, len(indices), MAX_RUNS_PER_CALL):
                stopping.check("sampling")
                call = indices[at:at + MAX_RUNS_PER_CALL]
                done = self.engine.synthesize_parts([(runs[i].ref, runs[i].text, replace(params[i], seed=seed))
                                                     for i in call])
                for stage in ("synthesis", "vocoding"):
                    spent[stage] = spent.get(stage, 0.0) + done[0].timing_ms.get(stage, 0.0)
                results.update(zip(call, done))
            return results

        current = sample(list(range(len(runs))), params[0].seed)
        first_round = dict(spent)
        if not wants_alignment(request):  # each call's times are on its first result: they add up once
            return [(current[i], None) for i in range(len(runs))]
        retry_seeds = random.Random(params[0].seed)
        kept: dict[int, tuple[SynthesisResult, GatedResult]] = {}
        pending, seed, retries_ms, align_ms = list(current), params[0].seed, 0.0, 0.0
        with ThreadPoolExecutor(max_workers=min(len(runs), MAX_PARALLEL_PARTS), thread_name_prefix="part") as pool:
            for attempt in range(request.max_retries + 1):
                stopping.check("alignment")
                found = {i: pool.submit(contextvars.copy_context().run, align_audio, self.aligner, current[i].wave,
                                        current[i].sample_rate, runs[i].text, language=language)
                         for i in pending}
                failed = []
                for i in pending:
                    alignment = found[i].result()
                    align_ms += alignment.align_seconds * 1000
                    gated = GatedResult(current[i].wave, current[i].sample_rate, alignment, seed, attempt)
                    if kept_attempt(kept[i][1] if i in kept else None, gated) is gated:
                        kept[i] = (current[i], gated)
                    kept[i][1].retries = attempt
                    if not passes_gate(current[i].wave, alignment):
                        failed.append(i)
                pending = failed
                if not pending or attempt == request.max_retries:
                    break
                seed = retry_seeds.randint(0, MAX_RANDOM_SEED)
                current = sample(pending, seed)
                retries_ms += sum(spent.values())
        outcomes = [kept[i] for i in range(len(runs))]
        for result, _ in outcomes:  # the calls' times once, as a single text's job reports them
            result.timing_ms = {"postprocess": result.timing_ms.get("postprocess", 0.0)}
        outcomes[0][0].timing_ms.update(synthesis=first_round.get("synthesis", 0.0),
                                        vocoding=first_round.get("vocoding", 0.0),
                                        alignment=align_ms, retries=retries_ms)
        return outcomes

    def stream(self, request: SynthesizeRequest, resolved: ResolvedScript, job_id: str | None = None
               ) -> Iterator[dict]:
        """The items of a streamed job: one per piece of the text, as soon as it is made, then ``done``.

        Pieces are cut between words (tts/chunking.piece_end), so every word is timed in exactly one item.
        Each piece is sampled, re-sampled by the quality gate while its audio does not say it, and aligned
        before it is sent; the next piece is sampled meanwhile (queued as soon as this one's audio exists),
        so the sampler does not wait for the alignment. The first piece is short; the later ones are sized
        by the stream's measured speed (tts/chunking.StreamPacer) to be ready before the audio ahead of them
        has played. Pieces cannot be cross-faded as the unstreamed job's chunks are (that would hold back
        the end of each piece until the next exists), so each one fades in and out over ``EDGE_FADE_S``
        instead and is padded to a whole millisecond: played end to end the pieces meet at silence, without
        a click, and offsets and word times are exact milliseconds.
        """
        started = time.perf_counter()
        timing: dict[str, float] = {}
        if request.output == "bucket":  # refused before any work when there is no bucket
            delivery.plan_output("bucket", estimated_bytes=0, stores=self.stores,
                                 max_inline_bytes=self.settings.max_inline_bytes)
        script, parts, language = self.script_with_voices(request, resolved, timing)
        labelled = has_voices(request, parts)
        seed = request.seed if request.seed is not None else random.randint(0, MAX_RANDOM_SEED)
        params = SynthesisParams(
            nfe_step=request.nfe_step, cfg_strength=request.cfg_strength,
            sway_sampling_coef=request.sway_sampling_coef, speed=request.speed,
            cross_fade_duration=request.cross_fade_duration, remove_silence=request.remove_silence, seed=seed,
            job_started=started,
        )
        aligns = wants_alignment(request)
        retry_seeds = random.Random(seed)
        sample_rate = self.models.sample_rate
        pacer = StreamPacer(max_piece_seconds(audio.BYTES_PER_SAMPLE[request.output_format], sample_rate))
        steps = _stream_steps(script, language, request.normalize, pacer, request.segments is not None)
        upcoming: deque[Pause | _Piece] = deque()  # cut, not yet sent: pauses, and at most one piece, sampling

        def queue_next_piece() -> None:
            for step in steps:
                upcoming.append(step)
                if isinstance(step, _Piece):
                    # the stream's first piece is sampled before all else
                    step.params = replace(params, speed=step.part.speed, first_audio=step.first)
                    step.pending = self.engine.submit(step.part.ref, step.said.spoken, step.params)
                    return

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
                    wave = np.zeros(round(step.seconds * 1000) * (sample_rate // 1000), dtype=np.float32)
                    pacer.made(len(wave) / sample_rate, piece=False)
                    item = {"offset": round(offset, 3), "duration": round(len(wave) / sample_rate, 3),
                            "pause": round(len(wave) / sample_rate, 3)}
                else:
                    first = step.pending.result()
                    pacer.sampled(step.pending.sampled_in_s, len(first.wave) / sample_rate, step.part.ref.duration)
                    pacer.made(len(first.wave) / sample_rate)
                    queue_next_piece()  # sampled while this one is aligned
                    spoken_texts.append(step.said.spoken.strip())  # a cut reading leaves a space
                    wave, alignment, piece_seed, retries = self._piece(
                        request, step, first, language, aligns, retry_seeds, timing)
                    duration = len(wave) / sample_rate
                    if alignment is not None:
                        pacer.aligned(alignment.align_seconds, duration)
                    part = step.part
                    at = part.char_offset + step.start
                    item = {"offset": round(offset, 3), "duration": round(duration, 3),
                            "text_start": at, "text_end": part.char_offset + step.end, "seed": piece_seed}
                    label = part.labels() if labelled else {}
                    item.update(label)
                    if alignment is not None:
                        written = as_written(step.said, alignment)
                        placed = [shifted(w, offset, at, offset + duration, **label) for w in written.words]
                        words.extend(placed)
                        alignments.append((written, duration, retries))
                        if request.word_timings:
                            item["words"] = [w.to_dict() for w in placed]
                        if request.char_timings:
                            item["chars"] = [shifted(c, offset, at, offset + duration, **label).to_dict()
                                         for c in written.chars]
                stopping.check("encoding")
                t0 = time.perf_counter()
                encoded = audio.encode_audio(wave, sample_rate, request.output_format)
                timing["encoding_ms"] = timing.get("encoding_ms", 0.0) + (time.perf_counter() - t0) * 1000
                if seq == 0:
                    timing["first_audio_ms"] = (time.perf_counter() - started) * 1000
                waves.append(wave)
                offset_samples += len(wave)
                pacer.handed_out(time.perf_counter())
                yield {"seq": seq, "audio_base64": base64.b64encode(encoded).decode("ascii"),
                       "format": request.output_format, "content_type": audio.content_type(request.output_format),
                       "sample_rate": sample_rate, **item}
                seq += 1
        finally:  # stopped, failed or closed: a piece queued ahead is not sampled for nobody
            for step in upcoming:
                if isinstance(step, _Piece) and step.pending is not None:
                    step.pending.cancel()
        done = self._stream_done(request, job_id, seq=seq, waves=waves, words=words, alignments=alignments,
                                 seed=seed, timing=timing, started=started, warnings=_voice_warnings(parts))
        done = {**done, "language": language, "normalized_text": " ".join(spoken_texts)}
        if delivery.inline_size(done) > STREAM_ITEM_BYTES - delivery.LAST_ITEM_ROOM_BYTES:
            stopping.check("upload")
            delivery.fit_last_item(done, max_bytes=STREAM_ITEM_BYTES, stores=self.stores, job_id=job_id,
                                   upload=request.output != "inline")
        yield done

    def _piece(self, request: SynthesizeRequest, piece: _Piece, first: SynthesisResult, language: str, aligns: bool,
               retry_seeds: random.Random, timing: dict[str, float]) -> tuple[np.ndarray, Alignment | None, int, int]:
        """One streamed piece from its first sampling (``first``): faded at its ends, and, when timings or
        retries are wanted, aligned and re-sampled by the quality gate until it says its text. Returns wave,
        alignment, seed, retries."""
        params = piece.params

        def attempt(seed: int):
            nonlocal first
            result = first if first is not None else self.engine.synthesize(
                piece.part.ref, piece.said.spoken, replace(params, seed=seed))
            first = None
            for stage, ms in result.timing_ms.items():
                timing[f"{stage}_ms"] = timing.get(f"{stage}_ms", 0.0) + ms
            stopping.check("alignment")
            return _faded(result.wave, result.sample_rate), result.sample_rate

        if not aligns:
            return attempt(params.seed)[0], None, params.seed, 0
        gated = synthesize_until_aligned(
            attempt, self.aligner, piece.said.spoken, seed=params.seed, max_retries=request.max_retries,
            language=language, new_seed=lambda: retry_seeds.randint(0, MAX_RANDOM_SEED),
        )
        timing["alignment_ms"] = timing.get("alignment_ms", 0.0) + gated.alignment.align_seconds * 1000
        return gated.wave, gated.alignment, gated.seed, gated.retries

    def _stream_done(self, request: SynthesizeRequest, job_id: str | None, *, seq: int, waves: list[np.ndarray],
                     words: list[TimedSpan], alignments: list, seed: int, timing: dict[str, float], started: float,
                     warnings: list[str]) -> dict:
        """The last item of a streamed job: what only the whole gives (captions, quality, timing, a link)."""
        sample_rate = self.models.sample_rate
        duration = sum(len(w) for w in waves) / sample_rate
        out: dict = {"seq": seq, "done": True, "pieces": len(waves), "duration": round(duration, 3),
                     "sample_rate": sample_rate, "format": request.output_format, "seed": seed,
                     "model": self.models.name}
        if alignments:
            t0 = time.perf_counter()
            whole = Alignment(words=words, chars=[], score=0.0, backend=alignments[0][0].backend,
                              estimated=any(a.estimated for a, _, _ in alignments))
            options = request.model_copy(update={"word_timings": False, "char_timings": False})
            fields = timing_fields(whole, options, duration, speaker_prefix=self.settings.caption_speaker_prefix)
            out.update(fields)
            out["quality"] = quality_field(alignments)
            timing["captions_ms"] = (time.perf_counter() - t0) * 1000
        if request.output != "inline" and self.stores.bucket is not None:
            stopping.check("upload")
            whole_audio = audio.encode_audio(np.concatenate(waves), sample_rate, request.output_format)
            name = f"speech.{request.output_format}"
            links = delivery.upload_result(self.stores, job_id, [delivery.ResultFile(
                name, whole_audio, audio.content_type(request.output_format))])
            out.update(audio_url=links[name]["url"], files=links, expires_in=self.stores.settings.url_expiry_s)
        timing["total_ms"] = (time.perf_counter() - started) * 1000
        out["timing"] = {k: round(v, 2) for k, v in timing.items()}
        out["timing"]["rtf"] = round(timing["total_ms"] / 1000 / max(duration, 1e-6), 4)
        out["warnings"] = warnings
        return out

    def _synthesize_gated(self, request: SynthesizeRequest, ref: PreparedReference, text: str,
                          params: SynthesisParams, language: str, report_chunks: int = 0
                          ) -> tuple[SynthesisResult, GatedResult | None]:
        """Synthesise, align the final audio, and re-sample while it does not match the text.

        Retry seeds come from a generator seeded with the job's seed, so a request with a
        seed is reproducible as a whole. Without timings, captions or retries wanted, the
        aligner is not run at all. A long job (``report_chunks``: its chunks) reports each
        attempt's sampling and alignment as it starts (progress.py).
        """
        aligns = wants_alignment(request)
        total = 1 + (request.max_retries if aligns else 0)

        def note(stage: str, attempt: int, **extra) -> None:
            if report_chunks:
                progress.report({"stage": stage, "attempt": attempt, "of": total, "chunks": report_chunks, **extra})

        if not aligns:
            note("sampling", 1)
            return self.engine.synthesize(ref, text, params), None
        attempts: dict[int, SynthesisResult] = {}

        def attempt(seed: int):
            note("sampling", len(attempts) + 1)
            attempts[seed] = self.engine.synthesize(ref, text, replace(params, seed=seed))
            stopping.check("alignment")
            result = attempts[seed]
            note("aligning", len(attempts), audio_seconds=round(len(result.wave) / result.sample_rate, 3))
            return result.wave, result.sample_rate

        retry_seeds = random.Random(params.seed)
        gated = synthesize_until_aligned(
            attempt, self.aligner, text, seed=params.seed, max_retries=request.max_retries,
            language=language, new_seed=lambda: retry_seeds.randint(0, MAX_RANDOM_SEED),
        )
        result = attempts[gated.seed]
        result.timing_ms["alignment"] = gated.alignment.align_seconds * 1000
        spent = [a.timing_ms for s, a in attempts.items() if s != gated.seed]  # none without retries
        result.timing_ms["retries"] = sum(t.get("synthesis", 0) + t.get("vocoding", 0) for t in spent)
        return result, gated

    def language_for(self, resolved: ResolvedScript) -> str:
        """The language that chooses the normaliser and the aligner: as the job says, else the one its voices
        keep (``resolved.language``), else guessed from the words to speak (the parts: tags such as
        ``[voice:anna]`` are no Latin text). The guess only tells scripts apart (Latin script reads as
        English), so where the model speaks one language and it is not the guess, the model's language is
        the better one."""
        if resolved.language:
            return resolved.language
        guess = guess_language(" ".join(part.written for part in resolved.parts))
        spoken = [tag.lower().split("-")[0] for tag in self.model_languages]
        if len(spoken) == 1 and guess.split("-")[0] != spoken[0]:
            return self.model_languages[0]
        return guess

    def reference_for(self, source: ReferenceAudio | VoiceSource, target_rms: float | None = None,
                      prefix: str = "", info: VoiceInfo | None = None) -> PreparedReference:
        """The prepared reference for a voice: a stored voice, audio sent with the job, or the default voice.
        ``prefix`` places the source's fields in the request, for errors (``segments.1.``); ``info``: the stored
        voice's metadata where the job has read it already (VoiceStore.load)."""
        target_rms = getattr(source, "target_rms", 0.1) if target_rms is None else target_rms
        if source.voice is not None:
            return self.voices.prepared(
                source.voice, target_rms,
                lambda v: prepare_reference(v.wave, v.sample_rate, v.info.ref_text, target_rms=target_rms,
                                            keep_seconds=self.settings.ref_audio_keep_seconds),
                field=prefix + "voice", info=info,
            )
        if source.ref_audio_url is not None or source.ref_audio_base64 is not None:
            data, field = self.downloads.audio(source.ref_audio_url, source.ref_audio_base64,
                                               url_field=prefix + "ref_audio_url", b64_field=prefix + "ref_audio_base64")
            return self.references.from_bytes(data, source.ref_text, field, target_rms, prefix + "ref_text")
        return self.references.default_voice(target_rms)

    def check_result_fits(self, request: SynthesizeRequest, runs: list[SampledText], chunks: list[list[str]],
                          spoken: list[NormalizedText], pause_samples: int) -> str:
        """Before synthesis: "inline" or "bucket" delivery; refuses a result that could not be delivered."""
        samples = pause_samples + sum(
            sum(r.chunk_frames) * self.models.hop_length if r.chunk_frames is not None
            else estimated_samples(r.ref, c, r.speed, self.models.hop_length) for r, c in zip(runs, chunks))
        # the written words and the spoken ones (normalized_words), the spoken text's as said
        said = " ".join(s.spoken for s in spoken)
        size = audio.estimated_encoded_bytes(samples, request.output_format) + timing_bytes_bound(
            request.script_text, said, request)
        return delivery.plan_output(
            request.output, estimated_bytes=size, stores=self.stores, max_inline_bytes=self.settings.max_inline_bytes,
            what=f"{samples / self.models.sample_rate:.0f} s of {request.output_format}",
        )


def _faded(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A streamed piece as sent: raised-cosine fades of ``EDGE_FADE_S`` at both ends, padded with silence to
    a whole millisecond, so pieces played one after another meet at zero and offsets stay exact."""
    wave = audio.fade_edges(wave, sample_rate, EDGE_FADE_S)
    per_ms = sample_rate // 1000
    pad = -len(wave) % per_ms
    return np.concatenate([wave, np.zeros(pad, dtype=np.float32)]) if pad else wave


def wants_alignment(request: SynthesizeRequest) -> bool:
    """Timings, captions or retries need the aligner; without them it is not run at all."""
    return bool(request.word_timings or request.char_timings or request.caption_formats or request.max_retries)


def _voice_warnings(parts: list[ScriptPart]) -> list[str]:
    """Each voice's reference warnings once, though several parts share the voice."""
    return list(dict.fromkeys(w for part in parts for w in part.ref.warnings))


@dataclass
class _Piece:
    """A streamed piece: ``part.written[start:end]``, said as ``said``; ``params`` and ``pending`` once queued
    for sampling."""

    part: ScriptPart
    said: NormalizedText
    start: int
    end: int
    first: bool  # the stream's first piece
    params: SynthesisParams | None = None  # how it is sampled, and re-sampled by the gate
    pending: PendingSynthesis | None = None


def _stream_steps(script: list[ScriptPart | Pause], language: str, normalize: bool, pacer: StreamPacer,
                  segments: bool = False) -> Iterator[Pause | _Piece]:
    """A streamed job's pauses and pieces, each piece cut only when asked for, so that its size follows what
    the stream has measured by then. Each part is said once, as the unstreamed job says it, and pieces never
    cut inside one reading (``uncut_spans``) but one said longer than an item holds (``cut_long_readings``).
    The parts are read here, before the first item: a text that cannot be read, or cut into items RunPod
    takes, fails the job before any audio is sent, not in the middle of the stream."""
    plan: list[Pause | tuple[ScriptPart, NormalizedText, list[tuple[int, int]]]] = []
    for item in script:
        if isinstance(item, Pause):
            if round(item.seconds * 1000):  # a pause of no whole millisecond (strength="none") sends no item
                plan.append(item)
            continue
        said = spoken_text(item.written, language, normalize)
        words = said.uncut_spans([(t.char_start, t.char_end) for t in tokenize(item.written, language)])
        limit = piece_limit_bytes(item.ref, item.speed, pacer.max_seconds)
        said, tokens = cut_long_readings(said, words, limit)
        for a, b in tokens:
            if len(said.spoken[said.to_spoken(a):said.to_spoken(b)].strip().encode("utf-8")) > limit:
                start, end = next((s, e) for s, e in words if s <= a < e)
                field = f"segments.{item.segment}.text" if segments else "text"
                raise JobError(field, f"{echo(item.written[start:end])} at character {item.char_offset + start} is "
                                      f"said longer than one streamed item holds ({pacer.max_seconds:.0f} s) and "
                                      "cannot be cut into parts that do; write it in shorter words, or leave stream out")
        plan.append((item, said, tokens))
    return _cut_lazily(plan, pacer)


def _cut_lazily(plan: list, pacer: StreamPacer) -> Iterator[Pause | _Piece]:
    first = True
    for step in plan:
        if isinstance(step, Pause):  # a long one (adjacent pauses add up) in as many items as it fills
            for ms in pause_lengths_ms(round(step.seconds * 1000), pacer.max_seconds):
                yield Pause(ms / 1000, step.char_start)
            continue
        part, said, tokens = step
        if not tokens:
            if part.written.strip():
                yield _Piece(part, said, 0, len(part.written), first)
                first = False
            continue
        i = 0
        while i < len(tokens):
            # the first piece is a few words, but no more than one item carries: a few numbers are said long
            seconds = pacer.max_seconds if first else pacer.next_seconds(time.perf_counter(), part.ref.duration)
            j = piece_end(part.ref, part.written, part.speed, tokens, i, seconds, pacer.max_seconds, said)
            if first:
                j = min(j, first_piece_end(part.written, tokens))
            yield _Piece(part, said.within(tokens[i][0], tokens[j - 1][1]), tokens[i][0], tokens[j - 1][1], first)
            first = False
            i = j
