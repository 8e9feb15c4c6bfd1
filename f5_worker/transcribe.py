"""Speech recognition for voices uploaded without ``ref_text``: a transformers Whisper pipeline.

Upstream F5-TTS transcribes references with ``openai/whisper-large-v3-turbo``
through ``transformers.pipeline``; so does this, but the model is configurable
(``ASR_MODEL``: a Hub id or a local directory), loaded on first use only (most
workers never need it), and a model that cannot be loaded (no network, no
cache, bad name) becomes a clear job error instead of a crash.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from f5_worker import audio
from f5_worker.config import DEFAULT_ASR_MODEL
from f5_worker.errors import JobError, free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory

WHISPER_SAMPLE_RATE = 16000
# After a failed load, wait this long before trying again (loading may hit the network).
RETRY_AFTER_S = 300.0


class WhisperTranscriber:
    """Callable ``(wave, sample_rate) -> text``; thread-safe, loads the pipeline lazily."""

    def __init__(self, model: str = DEFAULT_ASR_MODEL, device: str = "auto", language: str | None = None):
        self.model = model
        self.device = device
        self.language = language
        self._pipe = None
        self._failure: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def _load(self):
        with self._lock:
            if self._pipe is not None:
                return self._pipe
            if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
                raise self._unavailable(self._failure[1])
            try:
                import torch
                from transformers import pipeline

                device = self.device
                if device == "auto":
                    device = "cuda" if torch.cuda.is_available() else "cpu"
                dtype = torch.float16 if device.startswith("cuda") else torch.float32
                self._pipe = pipeline("automatic-speech-recognition", model=self.model, dtype=dtype, device=device)
            except Exception as exc:  # noqa: BLE001 - OSError (offline/missing), ValueError (not an ASR model), ImportError...
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                self._failure = (time.monotonic(), reason)
                raise self._unavailable(reason) from None
            self._failure = None
            return self._pipe

    def _unavailable(self, reason: str) -> JobError:
        return JobError(
            "ref_text",
            f"not given, and the speech recognition model {self.model!r} is unavailable ({reason}); "
            "give ref_text, or make the model available (ASR_MODEL, Hugging Face cache)",
        )

    def __call__(self, wave: np.ndarray, sample_rate: int) -> str:
        pipe = self._load()
        wave16 = audio.resample(wave, sample_rate, WHISPER_SAMPLE_RATE)
        kwargs = {"task": "transcribe"}
        if self.language:
            kwargs["language"] = self.language
        try:
            result = pipe(
                {"raw": np.ascontiguousarray(wave16, dtype=np.float32), "sampling_rate": WHISPER_SAMPLE_RATE},
                generate_kwargs=kwargs,  # voices keep at most ~12 s: one Whisper window, no chunking
                return_timestamps=False,
            )
        except Exception as exc:
            if is_gpu_failure(exc):
                raise  # the GPU is lost for every later job too: Worker.handle has the worker replaced
            if is_gpu_out_of_memory(exc):
                free_gpu_memory()
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            raise JobError("ref_text", f"speech recognition failed ({reason}); give ref_text") from None
        return str(result["text"]).strip()
