"""Synthesis: prepared reference + text -> one wave, through f5_tts's CFM.sample and Vocos.

Follows upstream's infer_batch_process (chunk sizing, durations, RMS handling,
cross-fade) but samples all of a job's chunks in one batched ``CFM.sample`` call
instead of one thread per chunk, and batches concurrent jobs together.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from f5_worker import audio, stopping
from f5_worker.errors import JobError, summary
from f5_worker.models import LoadedModels

log = logging.getLogger(__name__)

# upstream: sentences end at these marks (ASCII followed by a space, CJK directly)
_SENTENCE_SPLIT = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")


@dataclass
class PreparedReference:
    """A reference voice ready for sampling: cached per voice and reused across jobs."""

    wave: np.ndarray  # 24 kHz mono, RMS-normalised to target_rms when quieter
    text: str  # ends with ". " (or "。") as upstream expects
    rms: float  # RMS before normalisation; generated audio is scaled back to it
    target_rms: float
    duration: float
    warnings: list[str] = field(default_factory=list)
    mel: object = field(default=None, repr=False)  # filled by the sampler on first use


@dataclass
class SynthesisParams:
    nfe_step: int = 32
    cfg_strength: float = 2.0
    sway_sampling_coef: float = -1.0
    speed: float = 1.0
    cross_fade_duration: float = 0.15
    remove_silence: bool = False
    seed: int = 0


@dataclass
class SynthesisResult:
    wave: np.ndarray
    sample_rate: int
    chunks: list[str]
    timing_ms: dict[str, float]
    batch_jobs: int = 1  # jobs that shared the sampling call
    seed: int = 0


# F5-TTS sizes the generated audio from the reference's speaking rate (bytes of text per second of
# audio). Fast speech is about 20-30 UTF-8 bytes a second in English, Chinese, Japanese or Korean;
# a transcript far denser than this is not the audio's, and leaves (next to) no frames to generate.
MAX_REF_TEXT_BYTES_PER_SECOND = 60.0


def check_reference_rate(text: str, seconds: float, field: str = "ref_text") -> None:
    """Refuse a transcript that cannot be what the reference audio says (it is far too long for it)."""
    size = len(text.strip().encode("utf-8"))
    if seconds <= 0 or size / seconds > MAX_REF_TEXT_BYTES_PER_SECOND:
        raise JobError(field, f"is {size} bytes of text for {seconds:.1f} s of reference audio, over "
                              f"{MAX_REF_TEXT_BYTES_PER_SECOND:g} a second: it cannot be this audio's transcript")


def normalise_ref_text(text: str) -> str:
    """Upstream ends the reference text with sentence punctuation and a space."""
    text = text.strip()
    if text.endswith("。"):
        return text
    if not text.endswith("."):
        text += "."
    return text + " "


def prepare_reference(wave: np.ndarray, sample_rate: int, text: str, *, target_rms: float = 0.1,
                      keep_seconds: float = 12.0) -> PreparedReference:
    wave = audio.resample(wave, sample_rate, audio.TARGET_SAMPLE_RATE)
    trimmed = audio.trim_reference(wave, audio.TARGET_SAMPLE_RATE, keep_seconds)
    wave = trimmed.wave
    rms = float(np.sqrt(np.mean(np.square(wave)))) if len(wave) else 0.0
    if 0 < rms < target_rms:
        wave = wave * (target_rms / rms)
    return PreparedReference(
        wave=wave.astype(np.float32),
        text=normalise_ref_text(text),
        rms=rms,
        target_rms=target_rms,
        duration=len(wave) / audio.TARGET_SAMPLE_RATE,
        warnings=[trimmed.warning] if trimmed.warning else [],
    )


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Split text at sentence marks into chunks of at most ``max_chars`` UTF-8 bytes (upstream's rule).

    Upstream stops there, so a text without punctuation became one chunk of any length (5000
    characters: 8 minutes of audio in one sampling run). A sentence over ``max_chars`` is split
    further at spaces, and a word longer than that between characters.
    """
    chunks, current = [], ""
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence:
            continue
        if len(sentence.encode("utf-8")) > max_chars:
            if current.strip():
                chunks.append(current.strip())
            current = ""
            chunks.extend(_split_long_sentence(sentence, max_chars))
            continue
        piece = sentence + " " if len(sentence[-1].encode("utf-8")) == 1 else sentence
        if len(current.encode("utf-8")) + len(sentence.encode("utf-8")) <= max_chars:
            current += piece
        else:
            if current:
                chunks.append(current.strip())
            current = piece
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` bytes, cut at spaces; inside a word only when it alone is longer."""
    def fits(piece: str) -> bool:
        return len(piece.encode("utf-8")) <= max_chars

    words = []
    for word in sentence.split():
        part = ""
        for ch in word:
            if part and not fits(part + ch):
                words.append(part)
                part = ""
            part += ch
        words.append(part)
    pieces, current = [], ""
    for word in words:
        joined = f"{current} {word}" if current else word
        if current and not fits(joined):
            pieces.append(current)
            current = word
        else:
            current = joined
    if current:
        pieces.append(current)
    return pieces


def max_chunk_chars(ref: PreparedReference, speed: float) -> int:
    """Upstream sizes chunks so reference + chunk stays under about 22 s."""
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    return max(1, int(per_second * (22 - ref.duration) * speed))


def chunk_frames(ref: PreparedReference, chunk: str, speed: float, hop_length: int) -> int:
    """Total mel frames (reference + generated) for one chunk, as upstream estimates them."""
    ref_frames = len(ref.wave) // hop_length
    local_speed = 0.3 if len(chunk.encode("utf-8")) < 10 else speed
    ref_bytes = len(ref.text.encode("utf-8"))
    return ref_frames + int(ref_frames / ref_bytes * len(chunk.encode("utf-8")) / local_speed)


def plan_chunks(ref: PreparedReference, text: str, speed: float) -> list[str]:
    return chunk_text(text, max_chunk_chars(ref, speed)) or [text.strip()]


def estimated_samples(ref: PreparedReference, chunks: list[str], speed: float, hop_length: int = 256) -> int:
    """Output length before synthesis (cross-fades ignored: an upper bound)."""
    ref_frames = len(ref.wave) // hop_length
    return sum(chunk_frames(ref, c, speed, hop_length) - ref_frames for c in chunks) * hop_length


@dataclass
class SampleRequest:
    """One job's chunks, waiting for the sampler."""

    ref: PreparedReference
    texts: list[str]  # reference text + chunk, pinyin-converted as upstream
    durations: list[int]  # total frames (reference + generated) per chunk
    params: SynthesisParams
    stop: threading.Event | None = None  # the job's stop flag (stopping.py)
    future: Future = field(default_factory=Future)

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


class SynthesisEngine:
    """Owns the models and one sampler thread that batches compatible jobs (dynamic batching).

    Each job's chunks go to ``CFM.sample`` in one batched call; jobs that arrive
    within ``max_wait_s`` of each other with the same NFE, CFG and sway join
    the same call, up to ``max_batch_jobs`` jobs and ``max_batch_frames`` frames.
    """

    def __init__(self, models: LoadedModels, *, max_batch_jobs: int = 1, max_wait_s: float = 0.01,
                 max_batch_frames: int = 1 << 17):
        self.models = models
        self.max_batch_jobs = max(1, max_batch_jobs)
        self.max_wait_s = max_wait_s
        self.max_batch_frames = max_batch_frames
        self._queue: queue.Queue[SampleRequest] = queue.Queue()
        self._held: list[SampleRequest] = []
        self._running: list[SampleRequest] = []  # the batch being sampled, for the per-step stop check
        self._step = self._steps = 0
        # Called in the job's thread once its request waits in the sampler's queue. Tests use it to act on a job
        # known to be waiting (stop it, queue the next one behind it) instead of sleeping and hoping it got there.
        self.on_queued: Callable[[SampleRequest], None] | None = None
        models.cfm.transformer.register_forward_pre_hook(self._before_step)  # once per sampling step
        self._warmed: Future = Future()
        self._thread = threading.Thread(target=self._run, name="f5-sampler", daemon=True)
        self._thread.start()
        self._warmed.result()  # a warm-up failure fails start-up, not the first job (failed compiles fall back)

    def synthesize(self, ref: PreparedReference, text: str, params: SynthesisParams) -> SynthesisResult:
        from f5_tts.model.utils import convert_char_to_pinyin

        m = self.models
        chunks = plan_chunks(ref, text, params.speed)
        ref_text = ref.text if len(ref.text[-1].encode("utf-8")) != 1 else ref.text.rstrip() + " "
        request = SampleRequest(
            ref=ref,
            texts=convert_char_to_pinyin([ref_text + c for c in chunks]),
            durations=[chunk_frames(ref, c, params.speed, m.hop_length) for c in chunks],
            params=params,
            stop=stopping.current_flag(),
        )
        self._queue.put(request)
        if self.on_queued is not None:
            self.on_queued(request)
        sampled: SampledWaves = stopping.result_unless_stopped(request.future, "sampling")

        started = time.perf_counter()
        final = audio.cross_fade_join(sampled.waves, m.sample_rate, params.cross_fade_duration)
        if params.remove_silence:  # at the loudness sampled: its -50 dBFS threshold is meant for speech there
            final = audio.remove_long_silences(final, m.sample_rate)
        if ref.rms < ref.target_rms:  # a quiet reference was normalised up: give the speech its loudness back
            final = final * np.float32(ref.rms / ref.target_rms)
        timing = dict(sampled.timing_ms)
        timing["postprocess"] = (time.perf_counter() - started) * 1000
        return SynthesisResult(wave=final, sample_rate=m.sample_rate, chunks=chunks, timing_ms=timing,
                               batch_jobs=sampled.batch_jobs, seed=params.seed)

    # -- sampler thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._warm_up_or_fall_back()
        except BaseException as exc:  # start-up fails with it (see __init__)
            self._warmed.set_exception(exc)
            return
        self._warmed.set_result(None)
        while True:
            batch = self._next_batch()
            try:
                results = self._sample(batch)
            except BaseException as exc:  # hand the failure to every waiting job; keep the thread alive
                for request in batch:
                    request.future.set_exception(exc)
                continue
            for request, result in zip(batch, results):
                request.future.set_result(result)

    def _next_batch(self) -> list[SampleRequest]:
        while True:
            first = self._held.pop(0) if self._held else self._queue.get()
            if first.claim():
                break
        batch, frames = [first], first.frames
        too_big: list[SampleRequest] = []  # compatible, but over max_batch_frames with this batch
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_jobs:
            candidate = self._take_held(first.key)
            if candidate is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    candidate = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if candidate.key != first.key:
                self._held.append(candidate)  # waits for a later batch, in arrival order
            elif frames + candidate.frames > self.max_batch_frames:
                too_big.append(candidate)  # held aside: _take_held would hand it straight back
            elif candidate.claim():
                batch.append(candidate)
                frames += candidate.frames
        self._held[:0] = too_big  # first in line for the next batch
        return batch

    def _take_held(self, key: tuple) -> SampleRequest | None:
        for i, request in enumerate(self._held):
            if request.key == key:
                return self._held.pop(i)
        return None

    def _warm_up_or_fall_back(self) -> None:
        try:
            self._warm_up()
        except Exception as exc:
            if not self.models.compiled:
                raise
            # TORCH_COMPILE asks for speed; a worker that boots is worth more: run eagerly instead
            log.error("TORCH_COMPILE: compilation failed, running without it: %s", summary(exc))
            from f5_worker.models import uncompile_transformer_blocks

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
        """The reference's mel spectrogram, computed once per prepared reference and kept with it."""
        import torch

        if ref.mel is None:
            wave = torch.from_numpy(ref.wave).to(self.models.device)  # float32: f5-tts's mel is fp32
            ref.mel = self.models.cfm.mel_spec(wave.unsqueeze(0)).permute(0, 2, 1)[0]  # (frames, mels)
        return ref.mel

    def _sample(self, batch: list[SampleRequest]) -> list[SampledWaves]:
        import torch
        from torch.nn.utils.rnn import pad_sequence

        m = self.models
        params = batch[0].params
        with torch.inference_mode():
            started = time.perf_counter()
            conds, lens, texts, durations = [], [], [], []
            for request in batch:
                mel = self._reference_mel(request.ref)
                for text, duration in zip(request.texts, request.durations):
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
