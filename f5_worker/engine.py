"""Synthesis: prepared reference + text -> one wave, through f5_tts's CFM.sample and Vocos.

Follows upstream's infer_batch_process (chunk sizing, durations, RMS handling,
cross-fade) but samples all of a job's chunks in one batched ``CFM.sample`` call
instead of one thread per chunk.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from f5_worker import audio
from f5_worker.models import LoadedModels

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

    @property
    def frames(self) -> int:
        return len(self.wave) // 256


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
    """Split text at sentence marks into chunks of at most ``max_chars`` UTF-8 bytes (upstream's rule)."""
    chunks, current = [], ""
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence:
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


class SynthesisEngine:
    """Owns the loaded models; one sampling call at a time per engine."""

    def __init__(self, models: LoadedModels):
        self.models = models
        self._lock = threading.Lock()

    def synthesize(self, ref: PreparedReference, text: str, params: SynthesisParams) -> SynthesisResult:
        import torch
        from f5_tts.model.utils import convert_char_to_pinyin

        m = self.models
        timing: dict[str, float] = {}
        chunks = plan_chunks(ref, text, params.speed)
        ref_frames = len(ref.wave) // m.hop_length
        durations = [chunk_frames(ref, c, params.speed, m.hop_length) for c in chunks]
        ref_text = ref.text if len(ref.text[-1].encode("utf-8")) != 1 else ref.text.rstrip() + " "
        texts = convert_char_to_pinyin([ref_text + c for c in chunks])

        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            cond = torch.from_numpy(ref.wave).to(m.device).unsqueeze(0).expand(len(chunks), -1)
            torch.manual_seed(params.seed)
            mel, _ = m.cfm.sample(
                cond=cond.contiguous(),
                text=texts,
                duration=torch.tensor(durations, device=m.device, dtype=torch.long),
                lens=torch.full((len(chunks),), ref_frames, device=m.device, dtype=torch.long),
                steps=params.nfe_step,
                cfg_strength=params.cfg_strength,
                sway_sampling_coef=params.sway_sampling_coef,
            )
            del _
            self._sync()
            timing["synthesis"] = (time.perf_counter() - started) * 1000

            started = time.perf_counter()
            waves = []
            mel = mel.to(torch.float32)
            for i, total in enumerate(durations):
                generated = mel[i : i + 1, ref_frames:total, :].permute(0, 2, 1)
                wave = m.vocoder.decode(generated).squeeze(0).float().cpu().numpy()
                if ref.rms < ref.target_rms:
                    wave = wave * (ref.rms / ref.target_rms)
                waves.append(wave.astype(np.float32))
            self._sync()
            timing["vocoding"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        final = audio.cross_fade_join(waves, m.sample_rate, params.cross_fade_duration)
        if params.remove_silence:
            final = audio.remove_long_silences(final, m.sample_rate)
        timing["postprocess"] = (time.perf_counter() - started) * 1000
        return SynthesisResult(wave=final, sample_rate=m.sample_rate, chunks=chunks, timing_ms=timing)

    def _sync(self) -> None:
        if self.models.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
