"""The ``synthesize`` action: text in the reference's voice, with its timings, captions and quality.

The path of a job: the reference (a stored voice, the client's clip, or the
default voice) -> the delivery plan, refused before any GPU time if the
result could not be delivered -> sampling (tts/sampler.py), aligned and
re-sampled while the audio does not say the text (alignment/quality.py) ->
timings and captions -> encoding -> inline or bucket delivery (delivery.py).
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import replace

from f5_worker import audio, delivery, stopping
from f5_worker.actions.timings import quality_field, timing_bytes_bound, timing_fields
from f5_worker.alignment.quality import GatedResult, synthesize_until_aligned
from f5_worker.alignment.textnorm import guess_language
from f5_worker.alignment.types import Aligner
from f5_worker.config import Settings
from f5_worker.fetch import audio_bytes
from f5_worker.schema import ReferenceAudio, SynthesizeRequest
from f5_worker.storage.stores import Stores
from f5_worker.tts.chunking import estimated_samples, plan_chunks
from f5_worker.tts.reference import PreparedReference, ReferencePreparer, prepare_reference
from f5_worker.tts.sampler import SynthesisEngine, SynthesisParams, SynthesisResult
from f5_worker.voices import VoiceStore

MAX_RANDOM_SEED = 2**31 - 1  # seeds drawn for jobs that give none


class SynthesizeAction:
    def __init__(self, settings: Settings, engine: SynthesisEngine, aligner: Aligner, voices: VoiceStore,
                 stores: Stores, references: ReferencePreparer | None = None):
        self.settings = settings
        self.engine = engine
        self.models = engine.models
        self.aligner = aligner
        self.voices = voices
        self.stores = stores
        self.references = references or ReferencePreparer(max_input_seconds=settings.max_ref_audio_seconds,
                                                           keep_seconds=settings.ref_audio_keep_seconds)

    def __call__(self, request: SynthesizeRequest, job_id: str | None = None) -> dict:
        started = time.perf_counter()
        timing: dict[str, float] = {}

        t0 = time.perf_counter()
        ref = self.reference_for(request)
        timing["reference_ms"] = (time.perf_counter() - t0) * 1000

        chunks = plan_chunks(ref, request.text, request.speed)
        planned = self.check_result_fits(request, ref, chunks)

        seed = request.seed if request.seed is not None else random.randint(0, MAX_RANDOM_SEED)
        params = SynthesisParams(
            nfe_step=request.nfe_step,
            cfg_strength=request.cfg_strength,
            sway_sampling_coef=request.sway_sampling_coef,
            speed=request.speed,
            cross_fade_duration=request.cross_fade_duration,
            remove_silence=request.remove_silence,
            seed=seed,
        )
        result, gated = self._synthesize_gated(request, ref, params)
        for stage, ms in result.timing_ms.items():
            timing[f"{stage}_ms"] = ms
        duration = len(result.wave) / result.sample_rate

        extra: dict = {}
        if gated is not None:
            t0 = time.perf_counter()
            extra.update(timing_fields(gated.alignment, request, duration))
            extra["quality"] = quality_field(gated.alignment, gated.retries)
            timing["captions_ms"] = (time.perf_counter() - t0) * 1000

        stopping.check("encoding")
        t0 = time.perf_counter()
        encoded = audio.encode_audio(result.wave, result.sample_rate, request.output_format)
        audio_b64 = base64.b64encode(encoded).decode("ascii")
        timing["encoding_ms"] = (time.perf_counter() - t0) * 1000

        timing["total_ms"] = (time.perf_counter() - started) * 1000
        out = {
            "audio_base64": audio_b64,
            "format": request.output_format,
            "content_type": audio.content_type(request.output_format),
            "sample_rate": result.sample_rate,
            "duration": round(duration, 4),
            "seed": result.seed,
            "chunks": len(result.chunks),
            "model": self.models.name,
            **extra,
            "timing": {k: round(v, 2) for k, v in timing.items()},
            "warnings": list(ref.warnings),
        }
        out["timing"]["rtf"] = round(timing["total_ms"] / 1000 / max(duration, 1e-6), 4)
        return delivery.finish_output(
            out, planned=planned, job_id=job_id, stores=self.stores, max_inline_bytes=self.settings.max_inline_bytes,
            audio_bytes=encoded, audio_format=request.output_format, audio_content_type=out["content_type"],
        )

    def _synthesize_gated(self, request: SynthesizeRequest, ref: PreparedReference, params: SynthesisParams
                          ) -> tuple[SynthesisResult, GatedResult | None]:
        """Synthesise, align the final audio, and re-sample while it does not match the text.

        Retry seeds come from a generator seeded with the job's seed, so a request with a
        seed is reproducible as a whole. Without timings, captions or retries wanted, the
        aligner is not run at all.
        """
        wants_alignment = request.word_timings or request.char_timings or request.caption_formats or request.max_retries
        if not wants_alignment:
            return self.engine.synthesize(ref, request.text, params), None
        attempts: dict[int, SynthesisResult] = {}

        def attempt(seed: int):
            attempts[seed] = self.engine.synthesize(ref, request.text, replace(params, seed=seed))
            stopping.check("alignment")
            return attempts[seed].wave, attempts[seed].sample_rate

        retry_seeds = random.Random(params.seed)
        gated = synthesize_until_aligned(
            attempt, self.aligner, request.text, seed=params.seed, max_retries=request.max_retries,
            language=guess_language(request.text), new_seed=lambda: retry_seeds.randint(0, MAX_RANDOM_SEED),
        )
        result = attempts[gated.seed]
        result.timing_ms["alignment"] = gated.alignment.align_seconds * 1000
        spent = [a.timing_ms for s, a in attempts.items() if s != gated.seed]  # none without retries
        result.timing_ms["retries"] = sum(t.get("synthesis", 0) + t.get("vocoding", 0) for t in spent)
        return result, gated

    def reference_for(self, request: ReferenceAudio) -> PreparedReference:
        """The prepared reference for a job: a stored voice, its own audio, or the default voice."""
        target_rms = getattr(request, "target_rms", 0.1)
        if request.voice is not None:
            return self.voices.prepared(
                request.voice, target_rms,
                lambda v: prepare_reference(v.wave, v.sample_rate, v.info.ref_text, target_rms=target_rms,
                                            keep_seconds=self.settings.ref_audio_keep_seconds),
            )
        if request.ref_audio_url is not None or request.ref_audio_base64 is not None:
            data, field = audio_bytes(
                request.ref_audio_url, request.ref_audio_base64, url_field="ref_audio_url",
                b64_field="ref_audio_base64", max_bytes=self.settings.max_download_bytes,
                timeout_s=self.settings.download_timeout_s,
            )
            return self.references.from_bytes(data, request.ref_text, field, target_rms)
        return self.references.default_voice(target_rms)

    def check_result_fits(self, request: SynthesizeRequest, ref: PreparedReference, chunks: list[str]) -> str:
        """Before synthesis: "inline" or "bucket" delivery; refuses a result that could not be delivered."""
        samples = estimated_samples(ref, chunks, request.speed, self.models.hop_length)
        size = audio.estimated_encoded_bytes(samples, request.output_format) + timing_bytes_bound(request.text, request)
        return delivery.plan_output(
            request.output, estimated_bytes=size, stores=self.stores, max_inline_bytes=self.settings.max_inline_bytes,
            what=f"{samples / self.models.sample_rate:.0f} s of {request.output_format}",
        )
