"""The worker: models loaded once (the default at start, others when a job first names them), then each
job is parse -> dispatch -> error policy.

Every failure a job can cause comes back as ``{"error": "<field>: <problem>"}`` (an OpenAI route's job:
OpenAI's error object, as the HTTP server answers it);
unexpected ones are logged with their traceback and the worker keeps serving.
A CUDA error other than running out of memory leaves this process's GPU
unusable: the job answers with ``refresh_worker`` and the worker takes no more
jobs, so RunPod replaces it (docs/architecture.md, "Failure policy").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from f5_worker import progress, schema, stopping
from f5_worker.actions.align import AlignAction
from f5_worker.actions.health import HealthAction
from f5_worker.actions.models import ListModelsAction
from f5_worker.actions.openai_routes import OpenAIRoutesAction
from f5_worker.actions.synthesize import SynthesizeAction
from f5_worker.actions.voices import VoiceActions
from f5_worker.alignment.selection import auto_processes, load_aligner
from f5_worker.config import Settings, get_settings
from f5_worker.errors import JobError, free_gpu_memory, free_host_memory, is_gpu_failure, is_gpu_out_of_memory, summary
from f5_worker.fetch import DownloadLimits
from f5_worker.job import Job
from f5_worker.logs import echo, hide_credentials
from f5_worker.openai_speech import ApiError, refusal
from f5_worker.storage.stores import Stores
from f5_worker.synthesis.service import SynthesisService
from f5_worker.transcribe import WhisperTranscriber
from f5_worker.tts.loading import LoadedModels, load_model
from f5_worker.tts.model_pool import ModelPool
from f5_worker.tts.reference import ReferencePreparer
from f5_worker.tts.registry import ModelRegistry
from f5_worker.tts.sampler import SynthesisEngine
from f5_worker.voices import VoiceStore

log = logging.getLogger(__name__)

# every action: (request, job) -> result, or a stream's items (an OpenAI route's events: text, worker-vllm's form)
Action = Callable[[Any, Job], "dict | Iterator[dict | str]"]


class Worker:
    """Owns the loaded models and every component built on them, for the life of the process."""

    def __init__(self, settings: Settings, models: LoadedModels, stores: Stores | None = None,
                 registry: ModelRegistry | None = None):
        """``models``: the default model, loaded; the others are loaded when a job first names one."""
        self.settings = settings
        self.models = models
        self.gpu_failure: str | None = None  # set by a CUDA error: this process can no longer use the GPU
        self.registry = registry or ModelRegistry.from_settings(settings)
        self.pool = ModelPool(settings, self.registry, models, self._make_engine)
        self.engine = self.pool.default_engine
        processes = settings.align_processes
        if processes < 0:
            processes = auto_processes(models.device)
        self.align_processes = processes
        try:  # once, next to F5-TTS (docs/timings.md)
            self.aligner = load_aligner(settings.aligner, device=models.device, processes=processes,
                                        onsets=settings.align_onsets)
        except FileNotFoundError as exc:  # ALIGNER=ctc without cached weights: serve with the fallback
            log.error("%s; using ALIGNER=auto", exc)
            self.aligner = load_aligner("auto", device=models.device, processes=processes,
                                        onsets=settings.align_onsets)
        self.stores = stores or Stores.from_env(network_volume_path=settings.network_volume_path)
        self.voices = VoiceStore(
            self.stores.voices,
            transcriber=WhisperTranscriber(settings.asr_model, device=settings.device, language=settings.asr_language,
                                           offline=settings.hf_offline),
            keep_seconds=settings.ref_audio_keep_seconds,
            max_input_seconds=settings.max_ref_audio_seconds,
        )
        self.downloads = DownloadLimits(settings.max_download_bytes, settings.download_timeout_s)
        self.references = ReferencePreparer(max_input_seconds=settings.max_ref_audio_seconds,
                                            keep_seconds=settings.ref_audio_keep_seconds)
        self.synthesis = SynthesisService(settings, self.registry, self.pool, self.aligner, self.voices,
                                          self.stores, self.downloads, self.references)
        voice_actions = VoiceActions(self.voices, self.downloads, self.registry.entry)
        self.actions: dict[str, Action] = {
            "synthesize": SynthesizeAction(self.synthesis),
            "align": AlignAction(self.aligner, self.downloads),
            "upload_voice": voice_actions.upload,
            "list_voices": voice_actions.list,
            "get_voice": voice_actions.get,
            "delete_voice": voice_actions.delete,
            "list_models": ListModelsAction(self.pool),
            "health": HealthAction(models, self.aligner, processes, self.stores, self.pool.describe),
            schema.OPENAI_ROUTE: OpenAIRoutesAction(self.synthesis, self.items, self.failure),
        }
        assert self.actions.keys() == schema.ACTIONS.keys() | {schema.OPENAI_ROUTE}, "every request model has its action"
        self._check_storage()

    @classmethod
    def from_env(cls) -> Worker:
        settings = get_settings()
        registry = ModelRegistry.from_settings(settings)
        return cls(settings, load_model(registry.model_files(registry.default, settings), settings),
                   registry=registry)

    def _make_engine(self, models: LoadedModels) -> SynthesisEngine:
        return SynthesisEngine(models, max_batch_jobs=self.settings.max_batch_jobs,
                               max_wait_s=self.settings.batch_wait_ms / 1000)

    def _check_storage(self) -> None:
        """The bucket is checked once at start-up (docs/storage.md); a bad one is reported, not fatal."""
        bucket = self.stores.check_bucket()
        if bucket is not None and not bucket["writable"]:
            log.warning("bucket not usable at start-up: %s", bucket["error"])
        elif self.stores.settings.bucket_error:
            log.warning("%s", self.stores.settings.bucket_error)
        log.info("voices stored in %s", self.stores.voices.location)

    def concurrency(self) -> int:
        """Jobs to take at once (runpod's ``concurrency_modifier``); none after a GPU failure, so the
        endpoint's queue keeps them for healthy workers while RunPod replaces this one."""
        return 0 if self.gpu_failure is not None else self.settings.max_concurrency

    async def handle_async(self, job_input: Any, job_id: str | None = None,
                           reporter: progress.Reporter | None = None) -> dict | list:
        """For RunPod's async handler: jobs run in threads and meet in the sampler's batches.

        When RunPod stops the job (cancel, timeout), the thread cannot be interrupted;
        its stop flag is raised instead, and the work ends at its next check (stopping.py).
        A long job's progress goes to ``reporter`` (progress.py).
        """
        with stopping.stop_flag() as flag, progress.reporting(reporter):
            try:
                return await asyncio.to_thread(self.handle, job_input, job_id)
            except asyncio.CancelledError:
                flag.set()
                log.info("job %s: stopped by RunPod; its work ends at its next step", job_id)
                raise

    async def stream_async(self, job_input: Any, job_id: str | None = None,
                           reporter: progress.Reporter | None = None) -> AsyncIterator[dict]:
        """For RunPod's streaming (generator) handler: a streamed job's items as each is made, any other
        job's one result.

        The items are made in a thread, under the job's stop flag (stopping.made_in_thread). RunPod stops a
        job by cancelling the task that iterates this generator, possibly while it posts an item, outside
        this generator; so the flag is raised when that task ends, and the thread stops at its next check
        (at the latest at the next sampling step): no later piece is made.
        """
        with progress.reporting(reporter):  # the job's context, copied for its thread, holds the reporter
            context, flag = stopping.flagged_context()

        def stopped() -> None:
            log.info("job %s: stopped by RunPod; its work ends at its next step", job_id)

        def task_ended(task: asyncio.Task) -> None:
            if not flag.is_set() and task.cancelled():
                stopped()
            flag.set()

        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(task_ended)
        items = stopping.made_in_thread(lambda: self.items(job_input, job_id), context, flag, stopped)
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item
        finally:
            if task is not None:
                task.remove_done_callback(task_ended)

    def handle(self, job_input: Any, job_id: str | None = None) -> dict | list:
        """The whole result: a job's one result, or, for a streamed job run where nothing reads a stream
        (runpod's test_input.json mode), its items as a list, as RunPod's ``/runsync`` aggregates them."""
        results = list(self.items(job_input, job_id))
        if len(results) == 1 or isinstance(results[-1], dict) and "error" in results[-1]:
            return results[-1]
        return results

    def items(self, job_input: Any, job_id: str | None = None, *,
              streams: bool | None = None) -> Iterator[dict | str]:
        """parse -> dispatch -> error policy, as a generator: one result, or a streamed job's items. A failure
        is always the last item, ``{"error": ...}`` (``refusal``), also after items already sent. ``streams``: whether a
        job may stream (``stream: true``); by default the ``STREAMING`` setting, which exists because
        RunPod's queue turns every result of a streaming worker into a list (the HTTP server always streams)."""
        try:
            yield from self._items(job_input, job_id, self.settings.streaming if streams is None else streams)
        finally:
            free_host_memory()  # what the job freed goes back to the system

    def _items(self, job_input: Any, job_id: str | None, streams: bool) -> Iterator[dict | str]:
        started = time.perf_counter()
        openai = schema.is_openai_route(job_input)  # answered in OpenAI's form, its errors too
        if self.gpu_failure is not None:
            yield self._gpu_failed_result(openai)
            return
        try:
            stopping.check("start")  # stopped while it waited for a thread
            request = schema.parse_job(job_input)
            log.info("job %s: %s", job_id, _describe_request(request))
            job = Job(job_id, streams=streams)
            if getattr(request, "stream", False):
                job.require_streaming("stream")
            output = self.actions[request.action](request, job)
            if isinstance(output, dict):
                yield output
            else:  # a streamed job's items
                yield from output
        except Exception as exc:  # noqa: BLE001 - never let a job kill the worker; refusal() says how it ended
            yield self.refusal(exc, job_id, openai=openai)
            return
        log.info("job %s done in %.0f ms", job_id, (time.perf_counter() - started) * 1000)

    def refusal(self, exc: Exception, job_id: str | None, *, openai: bool = False) -> dict:
        """The error policy: a failed job's answer, ``{"error": "<field>: <problem>"}``, or for an OpenAI route's
        job OpenAI's error object (openai_speech.refusal, the HTTP server's rule), with ``refresh_worker``
        once the GPU has failed. Refusals are logged in a line, failures with their traceback."""
        if isinstance(exc, JobError | ApiError):
            log.info("job %s refused: %s", job_id, exc)
        elif isinstance(exc, stopping.JobStopped):
            log.info("job %s: %s", job_id, exc)
        elif isinstance(exc, MemoryError):
            log.exception("job %s ran out of memory", job_id)
        if openai:
            answer = refusal(exc, lambda failed: self.failure(failed, job_id)).openai_body()
            return {**answer, "refresh_worker": True} if self.gpu_failure is not None else answer
        if isinstance(exc, ApiError):
            return exc.native_body()
        if isinstance(exc, JobError | stopping.JobStopped):
            return {"error": str(exc)}
        if isinstance(exc, MemoryError):
            return {"error": "internal: out of memory; try a shorter text"}
        return self.failure(exc, job_id)  # it logs the traceback

    def failure(self, exc: Exception, job_id: str | None) -> dict:
        """The error for an unexpected exception (any front door's); a CUDA failure also marks the worker for replacement."""
        if is_gpu_out_of_memory(exc):
            free_gpu_memory()
            return {"error": "internal: out of GPU memory; try a shorter text"}
        if is_gpu_failure(exc):
            log.critical("job %s: the GPU failed; every later CUDA call in this process would fail too, "
                         "so this worker asks RunPod to replace it", job_id, exc_info=True)
            self.gpu_failure = hide_credentials(summary(exc, limit=200))
            return self._gpu_failed_result()
        log.exception("job %s failed", job_id)
        return {"error": f"internal: {type(exc).__name__}: {hide_credentials(str(exc))[:300]}"}

    def _gpu_failed_result(self, openai: bool = False) -> dict:
        """After a CUDA error the worker would fail every job it takes; ``refresh_worker`` makes RunPod replace it."""
        message = f"internal: the GPU failed ({self.gpu_failure}); this worker is being replaced, send the job again"
        answer = ApiError(500, message, kind="server_error").openai_body() if openai else {"error": message}
        return {**answer, "refresh_worker": True}


def _describe_request(request) -> str:
    """A log line for a job: sizes and choices, never payloads."""
    parts = [] if request.action == schema.OPENAI_ROUTE else [request.action]  # openai_route=... says it
    text = getattr(request, "text", None)
    if text is not None:
        parts.append(f"text={len(text)} chars")
    for name in ("openai_route", "model", "voice", "ref_audio_url", "audio_url", "name"):
        value = getattr(request, name, None)
        if value:
            parts.append(f"{name}={echo(value)}")  # the job's own text: cut and escaped (logs.py)
    b64 = getattr(request, "ref_audio_base64", None)
    if b64:
        parts.append(f"ref_audio_base64=<{len(b64)} chars>")
    return " ".join(parts)
