"""Speech recognition for voices uploaded without ``ref_text``: a transformers Whisper pipeline.

Upstream F5-TTS transcribes references with ``openai/whisper-large-v3-turbo``
through ``transformers.pipeline``; so does this, but the model is configurable
(``ASR_MODEL``: a Hub id or a local directory), loaded on first use only (most
workers never need it), and a model that cannot be loaded (no network, no
cache, bad name) becomes a clear job error instead of a crash.

A model missing from the cache fails at once where it cannot be downloaded:
with ``HF_HUB_OFFLINE`` set, or when one request to the hub shows it cannot be
reached (huggingface_hub would otherwise retry every file with back-off, about
30 s, before the same error). ``hub_logs_once`` gives huggingface_hub's and
transformers' log lines to the worker's own handler, so each is printed once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np

from f5_worker import audio
from f5_worker.config import DEFAULT_ASR_MODEL
from f5_worker.errors import JobError, free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory

WHISPER_SAMPLE_RATE = 16000
# After a failed load, wait this long before trying again (loading may hit the network).
RETRY_AFTER_S = 300.0
HUB_PROBE_TIMEOUT_S = 10.0  # one request to the hub, without retries, before a download is attempted

log = logging.getLogger(__name__)


def hub_logs_once() -> None:
    """Let huggingface_hub's and transformers' log records reach the root logger's handler only.

    Both libraries give their loggers a stderr handler of their own; huggingface_hub's also propagates, so
    with the worker's handler on the root logger each of its lines was printed twice (once without time or
    level). Call after configuring the root logger. transformers (1.5 s to import) is arranged now if it is
    loaded already, else when Whisper loads it.
    """
    import huggingface_hub.utils.logging  # noqa: F401 - configures its logger (adds its handler) on import

    hub = logging.getLogger("huggingface_hub")
    for handler in list(hub.handlers):
        hub.removeHandler(handler)
    hub.propagate = True
    if "transformers" in sys.modules:
        _transformers_logs_to_root()


def _transformers_logs_to_root() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()


def cached_snapshot(model: str) -> str | None:
    """The directory of ``model`` (a hub id) in the Hugging Face cache, or None when it is not there."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached, or not a hub id at all
        return None


def hub_unreachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be reached now, after one request without retries; None if it can."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s)  # any answer, even an error status, will do
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, TLS, proxy: all mean no download
        return f"{constants.ENDPOINT} cannot be reached: {type(exc).__name__}: {str(exc)[:200]}"
    return None


class _Unavailable(Exception):
    """The model cannot be had here; the message says why."""


class WhisperTranscriber:
    """Callable ``(wave, sample_rate) -> text``; thread-safe, loads the pipeline lazily."""

    def __init__(self, model: str = DEFAULT_ASR_MODEL, device: str = "auto", language: str | None = None,
                 offline: bool = False):
        self.model = model
        self.device = device
        self.language = language
        self.offline = offline  # HF_HUB_OFFLINE: load from a directory or the cache only
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
                self._pipe = self._open()
            except _Unavailable as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - OSError (missing files), ValueError (not an ASR model), ImportError...
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            else:
                self._failure = None
                return self._pipe
            self._failure = (time.monotonic(), reason)
            raise self._unavailable(reason) from None

    def _open(self):
        """The pipeline, from a directory, the cache, or a download where one can work (see the module's doc)."""
        if Path(self.model).expanduser().is_dir():
            return self._pipeline(str(Path(self.model).expanduser()))
        if self.model.startswith(("/", "./", "../", "~")):
            raise _Unavailable(f"{self.model} is not a directory")
        cached = cached_snapshot(self.model)
        if cached is not None:
            try:
                return self._pipeline(cached)
            except Exception:
                if self.offline:
                    raise
                log.warning("the cached copy of %s does not load; fetching it from the hub", self.model)
        if self.offline:
            raise _Unavailable("not in the Hugging Face cache, and HF_HUB_OFFLINE is set")
        reason = hub_unreachable()
        if reason is not None:
            raise _Unavailable(f"not in the Hugging Face cache, and {reason}")
        return self._pipeline(self.model)

    def _pipeline(self, source: str):
        import torch
        from transformers import pipeline

        if logging.getLogger().handlers:  # the worker's handler: transformers' lines go there, once
            _transformers_logs_to_root()
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        return pipeline("automatic-speech-recognition", model=source, dtype=dtype, device=device)

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
