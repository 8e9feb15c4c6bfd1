"""Synthesis: prepared reference + text -> one wave, through f5_tts's CFM.sample and Vocos.

Follows upstream's infer_batch_process (chunk sizing, durations, RMS handling,
cross-fade) but samples all of a job's chunks in one batched ``CFM.sample`` call
instead of one thread per chunk, and batches concurrent jobs together.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from f5_worker import audio, stopping
from f5_worker.errors import summary
from f5_worker.tts.chunking import chunk_frames, plan_chunks
from f5_worker.tts.compile import uncompile_transformer_blocks
from f5_worker.tts.loading import LoadedModels
from f5_worker.tts.reference import PreparedReference

log = logging.getLogger(__name__)


@dataclass
class SynthesisParams:
    nfe_step: int = 32
    cfg_strength: float = 2.0
    sway_sampling_coef: float = -1.0
    speed: float = 1.0
    cross_fade_duration: float = 0.15
    remove_silence: bool = False
    seed: int = 0
    # Generated frames per chunk, in place of the lengths ``speed`` gives (a target duration, synthesis/duration.py).
    chunk_frames: tuple[int, ...] | None = None
    # The sampler's order among waiting work (SynthesisEngine): a stream's first piece before anything else,
    # then the work of the jobs that started first. ``job_started`` is a time.perf_counter() reading.
    first_audio: bool = False
    job_started: float | None = None


@dataclass
class SynthesisResult:
    wave: np.ndarray
    sample_rate: int
    chunks: list[str]
    timing_ms: dict[str, float]
    batch_jobs: int = 1  # jobs that shared the sampling call
    seed: int = 0


@dataclass
class SampleRequest:
    """One job's chunks, waiting for the sampler."""

    ref: PreparedReference
    texts: list[str]  # reference text + chunk, pinyin-converted as upstream
    durations: list[int]  # total frames (reference + generated) per chunk
    params: SynthesisParams
    stop: threading.Event | None = None  # the job's stop flag (stopping.py)
    future: Future = field(default_factory=Future)
    chunk_refs: list[PreparedReference] | None = None  # per chunk, where a script's parts differ; None: ``ref``
    order: tuple = ()  # its place among the waiting requests (SynthesisEngine._waiting), smallest first

    @property
    def key(self) -> tuple:
        """Jobs sample together only when the ODE schedule and guidance match."""
        p = self.params
        return (p.nfe_step, round(p.cfg_strength, 6), round(p.sway_sampling_coef, 6))

    @property
    def frames(self) -> int:
        return sum(self.durations)

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def claim(self) -> bool:
        """Mark the request as being sampled; False for one stopped while it waited (it is dropped)."""
        if self.stopped:
            self.future.cancel()
        return self.future.set_running_or_notify_cancel()


@dataclass
class SampledWaves:
    waves: list[np.ndarray]
    timing_ms: dict[str, float]
    batch_jobs: int


class PendingSynthesis:
    """Texts queued for the sampler (``SynthesisEngine.submit_parts``); ``results`` waits for their audio."""

    def __init__(self, request: SampleRequest, parts: list[tuple[PreparedReference, str, SynthesisParams]],
                 chunks: list[list[str]], sample_rate: int):
        self.request, self.parts, self.chunks, self.sample_rate = request, parts, chunks, sample_rate
        self.submitted = time.perf_counter()
        # when its audio came out of the sampler: a text queued ahead may be read long after, and the time
        # it then waited for its reader is no time spent making it
        self.sampled_at: float | None = None
        request.future.add_done_callback(self._stamp)

    def _stamp(self, _future: Future) -> None:
        self.sampled_at = time.perf_counter()

    @property
    def sampled_in_s(self) -> float:
        """Wall seconds from its submission until its audio existed (queueing behind other work included)."""
        return (self.sampled_at if self.sampled_at is not None else time.perf_counter()) - self.submitted

    def results(self) -> list[SynthesisResult]:
        """Each part's audio, joined and post-processed. Waits under the job's stop flag, in its context."""
        sampled: SampledWaves = stopping.result_unless_stopped(self.request.future, "sampling")
        results, at = [], 0
        for n, ((ref, _, params), part_chunks) in enumerate(zip(self.parts, self.chunks)):
            started = time.perf_counter()
            waves = sampled.waves[at:at + len(part_chunks)]
            at += len(part_chunks)
            final = audio.cross_fade_join(waves, self.sample_rate, params.cross_fade_duration)
            if params.remove_silence:  # at the loudness sampled: its -50 dBFS threshold is meant for speech there
                final = audio.remove_long_silences(final, self.sample_rate)
            if ref.rms < ref.target_rms:  # a quiet reference was raised to target_rms: give the speech its loudness back
                final = final * np.float32(ref.rms / ref.target_rms)
            timing = dict(sampled.timing_ms) if n == 0 else {}
            timing["postprocess"] = (time.perf_counter() - started) * 1000
            results.append(SynthesisResult(wave=final, sample_rate=self.sample_rate, chunks=part_chunks,
                                           timing_ms=timing, batch_jobs=sampled.batch_jobs, seed=self.parts[0][2].seed))
        return results

    def result(self) -> SynthesisResult:
        return self.results()[0]

    def cancel(self) -> None:
        """Drop the request if the sampler has not started it (a stream that ended before it was needed)."""
        self.request.future.cancel()


_CLOSE = object()  # put in the queue by close(): the sampler thread ends once the jobs before it are served


class SynthesisEngine:
    """Owns the models and one sampler thread that batches compatible jobs (dynamic batching).

    Each job's chunks go to ``CFM.sample`` in one batched call; jobs that arrive
    within ``max_wait_s`` of each other with the same NFE, CFG and sway join
    the same call, up to ``max_batch_jobs`` jobs and ``max_batch_frames`` frames.

    Waiting work is served in ``order``: a stream's first piece before anything else (its audio is what a
    listener waits for), then the work of the job that started first. Served in arrival order, four streams
    in flight would each wait for the other three between pieces, and all four would end together near
    the end of the round; oldest job first, each ends about when it would have unstreamed, and a job's
    retries do not queue behind newer jobs' first attempts.

    ``close`` (a model evicted from the pool) ends the thread after the jobs already queued. A job that
    took the engine just before and queues after that still gets its audio: a thread is started again
    for it, and ends when the queue is empty.
    """

    def __init__(self, models: LoadedModels, *, max_batch_jobs: int = 1, max_wait_s: float = 0.01,
                 max_batch_frames: int = 1 << 17):
        self.models = models
        self.max_batch_jobs = max(1, max_batch_jobs)
        self.max_wait_s = max_wait_s
        self.max_batch_frames = max_batch_frames
        self._queue: queue.Queue[SampleRequest] = queue.Queue()  # handed over by the jobs' threads
        self._waiting: list[SampleRequest] = []  # taken from the queue by the sampler thread, in ``order``
        self._arrivals = itertools.count()  # ties in ``order`` go by arrival
        self._running: list[SampleRequest] = []  # the batch being sampled, for the per-step stop check
        self._step = self._steps = 0
        # Called in the job's thread once its request waits in the sampler's queue. Tests use it to act on a job
        # known to be waiting (stop it, queue the next one behind it) instead of sleeping and hoping it got there.
        self.on_queued: Callable[[SampleRequest], None] | None = None
        self._step_hook = models.cfm.transformer.register_forward_pre_hook(self._before_step)  # once per step
        self._closed = False
        self._alive = True  # a sampler thread is running (or about to); changed under _thread_lock
        self._thread_lock = threading.Lock()
        self._warmed: Future = Future()
        self._thread = threading.Thread(target=self._run, name=f"f5-sampler-{models.name}", daemon=True)
        self._thread.start()
        self._warmed.result()  # a warm-up failure fails start-up, not the first job (failed compiles fall back)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = None) -> bool:
        """End the sampler thread once the jobs queued so far are sampled; True when it has ended in ``timeout``."""
        with self._thread_lock:
            self._closed = True
            self._queue.put(_CLOSE)  # wakes a thread waiting for work
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _submit(self, request: SampleRequest) -> None:
        with self._thread_lock:
            self._queue.put(request)
            if not self._alive:  # closed and drained: this job took the engine just before it was closed
                self._alive = True
                self._step_hook = self.models.cfm.transformer.register_forward_pre_hook(self._before_step)
                self._thread = threading.Thread(target=self._serve, name=self._thread.name, daemon=True)
                self._thread.start()

    def synthesize(self, ref: PreparedReference, text: str, params: SynthesisParams) -> SynthesisResult:
        return self.synthesize_parts([(ref, text, params)])[0]

    def synthesize_parts(self, parts: list[tuple[PreparedReference, str, SynthesisParams]]) -> list[SynthesisResult]:
        """Several texts, each with its own reference, speed and lengths, sampled in ONE ``CFM.sample`` call
        (a script's parts: one call instead of one per part, whatever ``MAX_BATCH_JOBS`` says). The call's
        schedule, guidance and seed are the first part's. Each part is joined and post-processed on its own;
        the call's sampling and vocoding times are on the first result only, so they add up once."""
        return self.submit_parts(parts).results()

    def submit(self, ref: PreparedReference, text: str, params: SynthesisParams) -> PendingSynthesis:
        """Queue one text for the sampler and return at once: a streamed job samples its next piece this
        way while it aligns the one before."""
        return self.submit_parts([(ref, text, params)])

    def submit_parts(self, parts: list[tuple[PreparedReference, str, SynthesisParams]]) -> PendingSynthesis:
        """``synthesize_parts`` without waiting: its results come from the returned ``PendingSynthesis``."""
        from f5_tts.model.utils import convert_char_to_pinyin

        m = self.models
        chunks, texts, durations, refs = [], [], [], []
        for ref, text, params in parts:
            part_chunks = plan_chunks(ref, text, params.speed)
            ref_text = ref.text if len(ref.text[-1].encode("utf-8")) != 1 else ref.text.rstrip() + " "
            if params.chunk_frames is not None:
                if len(params.chunk_frames) != len(part_chunks):
                    raise ValueError(f"{len(params.chunk_frames)} chunk lengths for {len(part_chunks)} chunks")
                ref_mel_frames = len(ref.wave) // m.hop_length + 1  # f5-tts's mel centres its frames: one more
                durations += [ref_mel_frames + n for n in params.chunk_frames]
            else:
                durations += [chunk_frames(ref, c, params.speed, m.hop_length) for c in part_chunks]
            chunks.append(part_chunks)
            texts += [ref_text + c for c in part_chunks]
            refs += [ref] * len(part_chunks)
        first = parts[0][2]
        started = first.job_started if first.job_started is not None else time.perf_counter()
        request = SampleRequest(
            ref=parts[0][0],
            texts=convert_char_to_pinyin(texts),
            durations=durations,
            params=first,
            stop=stopping.current_flag(),
            chunk_refs=refs if len(parts) > 1 else None,
            order=(not first.first_audio, started, next(self._arrivals)),
        )
        self._submit(request)
        if self.on_queued is not None:
            self.on_queued(request)
        return PendingSynthesis(request, parts, chunks, m.sample_rate)

    # -- sampler thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._warm_up_or_fall_back()
        except BaseException as exc:  # noqa: BLE001 - start-up fails with it (see __init__)
            self._warmed.set_exception(exc)
            return
        self._warmed.set_result(None)
        self._serve()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                results = self._sample(batch)
            except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting job; keep the thread alive
                for request in batch:
                    request.future.set_exception(exc)
                continue
            for request, result in zip(batch, results):
                request.future.set_result(result)

    def _wait(self, request: SampleRequest) -> None:
        bisect.insort(self._waiting, request, key=lambda r: r.order)

    def _drain(self) -> None:
        """Everything queued so far joins the waiting list."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _CLOSE:
                self._wait(item)

    def _take(self) -> SampleRequest | None:
        """The first request in order; None once the engine is closed and nothing is left (the thread then ends)."""
        while True:
            self._drain()
            if self._waiting:
                return self._waiting.pop(0)
            if self._closed:
                with self._thread_lock:  # with _submit's: a request is either seen here or starts a new thread
                    if self._queue.empty():
                        self._alive = False
                        # the model's hook held this engine: without it nothing but its users keeps the
                        # model alive, and its memory is freed as soon as they are done with it
                        self._step_hook.remove()
                        return None
            else:
                item = self._queue.get()
                if item is not _CLOSE:
                    self._wait(item)

    def _take_compatible(self, key: tuple, frames_left: int) -> SampleRequest | None:
        """The first waiting request, in order, that can join a batch of ``key`` with ``frames_left`` to spare.
        One too big for this batch stays in its place, first in line for a later one."""
        for i, request in enumerate(self._waiting):
            if request.key == key and request.frames <= frames_left:
                return self._waiting.pop(i)
        return None

    def _next_batch(self) -> list[SampleRequest] | None:
        while True:
            first = self._take()
            if first is None:
                return None
            if first.claim():
                break
        batch, frames = [first], first.frames
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_jobs:
            self._drain()
            candidate = self._take_compatible(first.key, self.max_batch_frames - frames)
            if candidate is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is _CLOSE:  # closing: sample this batch, then serve what is left
                    break
                self._wait(item)
                continue
            if candidate.claim():
                batch.append(candidate)
                frames += candidate.frames
        return batch

    def _warm_up_or_fall_back(self) -> None:
        try:
            self._warm_up()
        except Exception as exc:
            if not self.models.compiled:
                raise
            # TORCH_COMPILE asks for speed; a worker that boots is worth more: run eagerly instead
            log.error("TORCH_COMPILE: compilation failed, running without it: %s", summary(exc))
            uncompile_transformer_blocks(self.models.cfm.transformer)
            self.models.compiled = False
            self._warm_up()

    def _warm_up(self) -> None:
        """Sampling passes before the first job, so that job doesn't pay for kernel set-up.

        They run here, in the sampler thread, because f5-tts keeps its text cache
        per thread and torch.compile's guards see whether it exists. With
        ``TORCH_COMPILE`` this is where compilation happens: two lengths and batch
        sizes 1 to 3 let torch mark lengths and batch size dynamic (sizes 1 and 2
        are specialised), so later jobs reuse the compiled graphs.
        """
        m = self.models
        if m.compiled:
            shapes = [(1, 50, 100), (1, 70, 150), (2, 60, 130), (3, 80, 170)]
        elif m.device.startswith("cuda"):
            shapes = [(1, 50, 100)]
        else:
            return  # nothing to set up on CPU
        import torch

        with torch.inference_mode():
            for batch, ref_frames, total in shapes:
                cond = torch.randn(batch, ref_frames, m.cfm.num_channels, device=m.device)
                mel, _ = self._cfm_sample(cond=cond, text=["warm up."] * batch,
                                          duration=torch.full((batch,), total, device=m.device),
                                          lens=torch.full((batch,), ref_frames, device=m.device),
                                          steps=2, cfg_strength=2.0, sway_sampling_coef=-1.0)
                m.vocoder.decode(mel[:, ref_frames:].float().permute(0, 2, 1))
        self._sync()

    def _before_step(self, transformer, args) -> None:
        """At each sampling step: end the batch when every job in it has been stopped."""
        self._step += 1
        if self._running and all(request.stopped for request in self._running):
            raise stopping.JobStopped(f"during sampling, at step {self._step} of {self._steps}")

    def _cfm_sample(self, **kwargs):
        """``CFM.sample``, with f5-tts's per-thread text cache emptied even when it fails.

        CFM.sample empties the cache only when it returns; after a failure (out of
        memory, say) the next job in this thread would read the failed job's text.
        """
        try:
            return self.models.cfm.sample(**kwargs)
        finally:
            self.models.cfm.transformer.clear_cache()

    def _reference_mel(self, ref: PreparedReference):
        """The reference's mel spectrogram for this model, computed once per prepared reference and mel setting,
        and kept with the reference (``PreparedReference.mel_for``)."""
        import torch

        def compute():
            wave = torch.from_numpy(ref.wave).to(self.models.device)  # float32: f5-tts's mel is fp32
            return self.models.cfm.mel_spec(wave.unsqueeze(0)).permute(0, 2, 1)[0]  # (frames, mels)

        return ref.mel_for(self._mel_setting, compute)

    @functools.cached_property
    def _mel_setting(self) -> tuple:
        """What this model's mel of a wave depends on (f5-tts's ``MelSpec``), and the device it is kept on."""
        spec = self.models.cfm.mel_spec
        return (getattr(spec.extractor, "__name__", repr(spec.extractor)), spec.target_sample_rate, spec.n_fft,
                spec.win_length, spec.hop_length, spec.n_mel_channels, str(self.models.device))

    def _sample(self, batch: list[SampleRequest]) -> list[SampledWaves]:
        import torch
        from torch.nn.utils.rnn import pad_sequence

        m = self.models
        params = batch[0].params
        with torch.inference_mode():
            started = time.perf_counter()
            conds, lens, texts, durations = [], [], [], []
            for request in batch:
                for i, (text, duration) in enumerate(zip(request.texts, request.durations)):
                    mel = self._reference_mel(request.chunk_refs[i] if request.chunk_refs else request.ref)
                    conds.append(mel)
                    lens.append(mel.shape[0])
                    texts.append(text)
                    durations.append(duration)
            cond = pad_sequence(conds, batch_first=True)
            log.info("sampling %d job(s): %d chunk(s), %d frames, %d steps", len(batch), len(texts),
                     sum(durations), params.nfe_step)
            torch.manual_seed(params.seed)
            self._running, self._step, self._steps = batch, 0, params.nfe_step
            try:
                mel_out, trajectory = self._cfm_sample(
                    cond=cond,
                    text=texts,
                    duration=torch.tensor(durations, device=m.device, dtype=torch.long),
                    lens=torch.tensor(lens, device=m.device, dtype=torch.long),
                    steps=params.nfe_step,
                    cfg_strength=params.cfg_strength,
                    sway_sampling_coef=params.sway_sampling_coef,
                )
            finally:
                self._running = []
            del trajectory
            self._sync()
            synthesis_ms = (time.perf_counter() - started) * 1000

            started = time.perf_counter()
            mel_out = mel_out.to(torch.float32)
            waves = []
            for i, (ref_frames, total) in enumerate(zip(lens, durations)):
                generated = mel_out[i : i + 1, ref_frames:total, :].permute(0, 2, 1)
                waves.append(m.vocoder.decode(generated).squeeze(0).float().cpu().numpy())
            self._sync()
            vocoding_ms = (time.perf_counter() - started) * 1000

        results, cursor = [], 0
        for request in batch:
            n = len(request.durations)
            job_waves = waves[cursor : cursor + n]
            cursor += n
            results.append(SampledWaves(
                waves=[w.astype(np.float32) for w in job_waves],
                timing_ms={"synthesis": synthesis_ms, "vocoding": vocoding_ms},
                batch_jobs=len(batch),
            ))
        return results

    def _sync(self) -> None:
        if self.models.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
