"""The worker: models loaded once, then each job is validate -> dispatch -> return.

Every failure a job can cause comes back as ``{"error": "<field>: <problem>"}``;
unexpected ones are logged with their traceback and the worker keeps serving.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from typing import Any, Callable

from f5_worker import audio, delivery, schema, stopping
from f5_worker.align_action import (
    AlignAction,
    quality_field,
    synthesize_until_aligned,
    timing_bytes_bound,
    timing_fields,
)
from f5_worker.aligners.textnorm import guess_language
from f5_worker.aligners.sphinx_pool import auto_processes
from f5_worker.alignment import load_aligner, speech_region
from f5_worker.engine import (
    PreparedReference,
    check_reference_rate,
    SynthesisEngine,
    SynthesisParams,
    SynthesisResult,
    estimated_samples,
    plan_chunks,
    prepare_reference,
)
from f5_worker.errors import JobError, free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory, summary
from f5_worker.models import LoadedModels, load_models
from f5_worker.settings import Settings, get_settings
from f5_worker.storage import Stores
from f5_worker.transcribe import WhisperTranscriber
from f5_worker.voice_actions import VoiceActions
from f5_worker.voices import VoiceStore

log = logging.getLogger(__name__)

DEFAULT_VOICE_FILE = "infer/examples/basic/basic_ref_en.wav"
DEFAULT_VOICE_TEXT = "Some call me nature, others call me mother nature."
REFERENCE_CACHE_SIZE = 32


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class ReferenceCache:
    """Prepared references by content hash, so a reference sent again costs nothing."""

    def __init__(self, size: int = REFERENCE_CACHE_SIZE):
        self._items: OrderedDict[str, PreparedReference] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_or_prepare(self, key: str, prepare: Callable[[], PreparedReference]) -> PreparedReference:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        ref = prepare()
        with self._lock:
            self._items[key] = ref
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ref


class Worker:
    def __init__(self, settings: Settings, models: LoadedModels, stores: Stores | None = None):
        self.settings = settings
        self.models = models
        self.engine = SynthesisEngine(models, max_batch_jobs=settings.max_batch_jobs,
                                      max_wait_s=settings.batch_wait_ms / 1000)
        self.references = ReferenceCache()
        self.gpu_failure: str | None = None  # set by a CUDA error: this process can no longer use the GPU
        self.actions: dict[str, Callable[[Any, str | None], dict]] = {
            "synthesize": self.synthesize,
            "health": self.health,
        }
        processes = settings.align_processes
        if processes < 0:
            processes = auto_processes(models.device)
        self.align_processes = processes
        try:  # once, next to F5-TTS (README, "Word and character timings")
            self.aligner = load_aligner(settings.aligner, device=models.device, processes=processes)
        except FileNotFoundError as exc:  # ALIGNER=ctc without cached weights: serve with the fallback
            log.error("%s; using ALIGNER=auto", exc)
            self.aligner = load_aligner("auto", device=models.device, processes=processes)
        self.actions.update(AlignAction(
            self.aligner,
            max_download_bytes=settings.max_download_bytes,
            download_timeout_s=settings.download_timeout_s,
        ).handlers())
        self._init_storage(stores)

    def _init_storage(self, stores: Stores | None) -> None:
        """Voices and bucket results (README: "Voices, storage..."); the bucket is checked once at start-up."""
        self.stores = stores or Stores.from_env(network_volume_path=self.settings.network_volume_path)
        self.voices = VoiceStore(
            self.stores.voices,
            transcriber=WhisperTranscriber(device=self.settings.device),
            keep_seconds=self.settings.ref_audio_keep_seconds,
            max_input_seconds=self.settings.max_ref_audio_seconds,
        )
        self.actions.update(VoiceActions(
            self.voices,
            max_download_bytes=self.settings.max_download_bytes,
            download_timeout_s=self.settings.download_timeout_s,
        ).handlers())
        bucket = self.stores.check_bucket()
        if bucket is not None and not bucket["writable"]:
            log.warning("bucket not usable at start-up: %s", bucket["error"])
        elif self.stores.settings.bucket_error:
            log.warning("%s", self.stores.settings.bucket_error)
        log.info("voices stored in %s", self.stores.voices.location)

    @classmethod
    def from_env(cls) -> "Worker":
        settings = get_settings()
        return cls(settings, load_models(settings))

    # -- dispatch -------------------------------------------------------------------------------

    def concurrency(self) -> int:
        """Jobs to take at once (runpod's ``concurrency_modifier``); none after a GPU failure, so the
        endpoint's queue keeps them for healthy workers while RunPod replaces this one."""
        return 0 if self.gpu_failure is not None else self.settings.max_concurrency

    async def handle_async(self, job_input: Any, job_id: str | None = None) -> dict:
        """For RunPod's async handler: jobs run in threads and meet in the sampler's batches.

        When RunPod stops the job (cancel, timeout), the thread cannot be interrupted;
        its stop flag is raised instead, and the work ends at its next check (stopping.py).
        """
        import asyncio

        with stopping.stop_flag() as flag:
            try:
                return await asyncio.to_thread(self.handle, job_input, job_id)
            except asyncio.CancelledError:
                flag.set()
                log.info("job %s: stopped by RunPod; its work ends at its next step", job_id)
                raise

    def handle(self, job_input: Any, job_id: str | None = None) -> dict:
        started = time.perf_counter()
        if self.gpu_failure is not None:
            return self._gpu_failed_result()
        try:
            stopping.check("start")  # stopped while it waited for a thread
            request = schema.parse_job(job_input)
            log.info("job %s: %s", job_id, _describe_request(request))
            result = self.actions[request.action](request, job_id)
        except JobError as exc:
            log.info("job %s refused: %s", job_id, exc)
            return {"error": str(exc)}
        except stopping.JobStopped as exc:
            log.info("job %s: %s", job_id, exc)
            return {"error": str(exc)}
        except MemoryError:
            log.exception("job %s ran out of memory", job_id)
            return {"error": "internal: out of memory; try a shorter text"}
        except Exception as exc:  # never let a job kill the worker
            if is_gpu_out_of_memory(exc):
                free_gpu_memory()
                return {"error": "internal: out of GPU memory; try a shorter text"}
            if is_gpu_failure(exc):
                log.critical("job %s: the GPU failed; every later CUDA call in this process would fail too, "
                             "so this worker asks RunPod to replace it", job_id, exc_info=True)
                self.gpu_failure = summary(exc, limit=200)
                return self._gpu_failed_result()
            log.exception("job %s failed", job_id)
            return {"error": f"internal: {type(exc).__name__}: {str(exc)[:300]}"}
        log.info("job %s done in %.0f ms", job_id, (time.perf_counter() - started) * 1000)
        return result

    # -- actions --------------------------------------------------------------------------------

    def health(self, request: schema.HealthRequest, job_id: str | None) -> dict:
        import torch

        m = self.models
        return {
            "status": "ok",
            "model": m.name,
            "device": m.device,
            "dtype": str(m.dtype).removeprefix("torch."),
            "cuda_graphs": m.cuda_graphs and getattr(m.cfm.transformer, "failed", None) is None,
            "torch_compile": m.compiled,
            "sample_rate": m.sample_rate,
            "load_seconds": round(m.load_seconds, 3),
            "versions": {
                "torch": torch.__version__,
                "f5-tts": package_version("f5-tts"),
                "runpod": package_version("runpod"),
                "f5-worker": package_version("f5-worker") or __import__("f5_worker").__version__,
            },
            "gpu": torch.cuda.get_device_name(0) if m.device.startswith("cuda") else None,
            "aligner": self.aligner.name,
            "align_processes": self.align_processes,
            "storage": self.stores.health(),
        }

    def synthesize(self, request: schema.SynthesizeRequest, job_id: str | None) -> dict:
        started = time.perf_counter()
        timing: dict[str, float] = {}

        t0 = time.perf_counter()
        ref = self.reference_for(request)
        timing["reference_ms"] = (time.perf_counter() - t0) * 1000

        chunks = plan_chunks(ref, request.text, request.speed)
        planned = self.check_result_fits(request, ref, chunks)

        seed = request.seed if request.seed is not None else random.randint(0, 2**31 - 1)
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

    # -- helpers --------------------------------------------------------------------------------

    def _synthesize_gated(self, request: schema.SynthesizeRequest, ref: PreparedReference, params: SynthesisParams):
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
            language=guess_language(request.text), new_seed=lambda: retry_seeds.randint(0, 2**31 - 1),
        )
        result = attempts[gated.seed]
        result.timing_ms["alignment"] = gated.alignment.align_seconds * 1000
        if gated.retries:
            spent = [a.timing_ms for s, a in attempts.items() if s != gated.seed]
            result.timing_ms["retries"] = sum(t.get("synthesis", 0) + t.get("vocoding", 0) for t in spent)
        return result, gated

    def reference_for(self, request: schema.ReferenceAudio) -> PreparedReference:
        """The prepared reference for a job: its own audio, a stored voice, or the default voice."""
        target_rms = getattr(request, "target_rms", 0.1)
        if request.voice is not None:
            return self.voices.prepared(
                request.voice, target_rms,
                lambda v: prepare_reference(v.wave, v.sample_rate, v.info.ref_text, target_rms=target_rms,
                                            keep_seconds=self.settings.ref_audio_keep_seconds),
            )
        if request.ref_audio_url is not None or request.ref_audio_base64 is not None:
            from f5_worker.fetch import audio_bytes

            data, field = audio_bytes(
                request.ref_audio_url, request.ref_audio_base64, url_field="ref_audio_url",
                b64_field="ref_audio_base64", max_bytes=self.settings.max_download_bytes,
                timeout_s=self.settings.download_timeout_s,
            )
            return self._prepare_cached(data, request.ref_text, field, target_rms)
        data = files("f5_tts").joinpath(DEFAULT_VOICE_FILE).read_bytes()
        return self._prepare_cached(data, DEFAULT_VOICE_TEXT, "default voice", target_rms, key_prefix="default:")

    def _prepare_cached(self, data: bytes, text: str, field: str, target_rms: float, key_prefix: str = "audio:"):
        key = key_prefix + hashlib.sha256(data + text.encode() + str(target_rms).encode()).hexdigest()
        return self.references.get_or_prepare(key, lambda: self.prepare_reference_audio(data, text, field, target_rms))

    def prepare_reference_audio(self, data: bytes, text: str, field: str, target_rms: float) -> PreparedReference:
        wave, sample_rate = audio.decode_audio(data, field, max_seconds=self.settings.max_ref_audio_seconds)
        first, last = speech_region(wave, sample_rate)
        if field != "default voice" and last - first > self.settings.ref_audio_keep_seconds:
            # Clipping would keep only the first part of the speech, and ref_text would no longer
            # match it (F5-TTS then sizes and says the text wrongly). upload_voice refuses the same.
            raise JobError(field, f"holds {last - first:.1f} s of speech; a reference keeps at most "
                                  f"{self.settings.ref_audio_keep_seconds:g} s, and ref_text would not match the "
                                  "clipped audio: send a shorter clip with its own transcript")
        ref = prepare_reference(wave, sample_rate, text, target_rms=target_rms,
                                keep_seconds=self.settings.ref_audio_keep_seconds)
        if ref.duration < 0.5 or ref.rms < 1e-4:
            raise JobError(field, "reference audio is silent or shorter than 0.5 s")
        if field != "default voice":
            check_reference_rate(text, ref.duration)
        return ref

    def check_result_fits(self, request: schema.SynthesizeRequest, ref: PreparedReference, chunks: list[str]) -> str:
        """Before synthesis: "inline" or "bucket" delivery; refuses a result that could not be delivered."""
        samples = estimated_samples(ref, chunks, request.speed, self.models.hop_length)
        size = audio.estimated_encoded_bytes(samples, request.output_format) + timing_bytes_bound(request.text, request)
        return delivery.plan_output(
            request.output, estimated_bytes=size, stores=self.stores, max_inline_bytes=self.settings.max_inline_bytes,
            what=f"{samples / self.models.sample_rate:.0f} s of {request.output_format}",
        )

    def _gpu_failed_result(self) -> dict:
        """After a CUDA error the worker would fail every job it takes; ``refresh_worker`` makes RunPod replace it."""
        return {"error": f"internal: the GPU failed ({self.gpu_failure}); this worker is being replaced, "
                         "send the job again", "refresh_worker": True}


def _describe_request(request) -> str:
    """A log line for a job: sizes and choices, never payloads."""
    parts = [request.action]
    text = getattr(request, "text", None)
    if text is not None:
        parts.append(f"text={len(text)} chars")
    for name in ("voice", "ref_audio_url"):
        value = getattr(request, name, None)
        if value:
            parts.append(f"{name}={value[:80]}")
    b64 = getattr(request, "ref_audio_base64", None)
    if b64:
        parts.append(f"ref_audio_base64=<{len(b64)} chars>")
    return " ".join(parts)
