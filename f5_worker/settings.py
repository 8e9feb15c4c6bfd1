"""Worker settings, read once from the environment.

Every knob a deployer may turn is an environment variable (RunPod endpoints are
configured that way); the names are documented in the README.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

TINY_MODEL = "tiny"
DEFAULT_MODEL = "F5TTS_v1_Base"


ALIGNER_KINDS = ("auto", "ctc", "sphinx", "estimate")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


class SettingsError(ValueError):
    """A setting the worker cannot start with; the message names the variable (runpod_handler exits with it)."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (got {value!r})") from None


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number (got {value!r})") from None


def _env_choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _env_device() -> str:
    value = _env("DEVICE", "auto").strip().lower()
    if not _DEVICE.fullmatch(value):
        raise SettingsError(f"DEVICE must be one of auto, cpu, cuda or cuda:N (got {value!r})")
    return value


def network_volume_from_env(env=None) -> Path | None:
    """``NETWORK_VOLUME_PATH``: unset means ``/runpod-volume``; set to "" means no volume, as the boot
    (start.sh, setup_network_venv.py) reads it, e.g. to keep off a read-only volume."""
    raw = (os.environ if env is None else env).get("NETWORK_VOLUME_PATH")
    if raw is None:
        return Path("/runpod-volume")
    return Path(raw.strip()) if raw.strip() else None


@dataclass(frozen=True)
class Settings:
    worker_model: str = DEFAULT_MODEL
    model_ckpt_path: str | None = None
    model_vocab_path: str | None = None
    vocoder_path: str | None = None
    network_volume_path: Path | None = Path("/runpod-volume")  # None: no volume (NETWORK_VOLUME_PATH="")
    hf_home: Path | None = None
    tiny_model_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    aligner: str = "auto"
    max_ref_audio_seconds: float = 120.0
    ref_audio_keep_seconds: float = 12.0
    max_download_bytes: int = 50 * 1024 * 1024
    download_timeout_s: float = 30.0
    max_inline_bytes: int = 9 * 1024 * 1024
    max_concurrency: int = 4
    max_batch_jobs: int = 1  # jobs per sampling call; batching measured no gain (README, Concurrency and seeds)
    batch_wait_ms: float = 10.0
    align_processes: int = -1  # -1: auto (README, Performance); 0: align in the worker process
    torch_compile: bool = False  # torch.compile the DiT's blocks at load (see README, Performance)
    cuda_graphs: bool = True  # replay the DiT's blocks from CUDA graphs on GPU (see README, Performance)
    hf_offline: bool = False

    @property
    def volume_mounted(self) -> bool:
        return self.network_volume_path is not None and self.network_volume_path.is_dir()

    @property
    def data_dir(self) -> Path:
        """Where the worker keeps its own files: on the volume when there is one."""
        if self.volume_mounted:
            return self.network_volume_path / "f5-worker"
        return Path("data").resolve()

    @property
    def model_cache_dir(self) -> Path:
        """The Hugging Face cache: ``HF_HOME`` if set, else on the volume, else the user cache."""
        if self.hf_home is not None:
            return self.hf_home
        if self.volume_mounted:
            return self.network_volume_path / "f5-worker" / "cache" / "huggingface"
        return Path.home() / ".cache" / "huggingface"

    @property
    def tiny_models_path(self) -> Path:
        return self.tiny_model_dir or self.data_dir / "models" / "tiny"

    @property
    def is_tiny(self) -> bool:
        return self.worker_model == TINY_MODEL


def get_settings() -> Settings:
    """Read the settings from the environment (call once per process, or per test)."""
    hf_home = _env("HF_HOME")
    tiny_dir = _env("TINY_MODEL_DIR")
    return Settings(
        worker_model=_env("WORKER_MODEL", DEFAULT_MODEL),
        model_ckpt_path=_env("MODEL_CKPT_PATH"),
        model_vocab_path=_env("MODEL_VOCAB_PATH"),
        vocoder_path=_env("VOCODER_PATH"),
        network_volume_path=network_volume_from_env(),
        hf_home=Path(hf_home) if hf_home else None,
        tiny_model_dir=Path(tiny_dir) if tiny_dir else None,
        device=_env_device(),
        dtype=_env("MODEL_DTYPE", "auto"),
        aligner=_env_choice("ALIGNER", "auto", ALIGNER_KINDS),
        max_ref_audio_seconds=_env_float("MAX_REF_AUDIO_SECONDS", 120.0),
        max_download_bytes=_env_int("MAX_DOWNLOAD_BYTES", 50 * 1024 * 1024),
        download_timeout_s=_env_float("DOWNLOAD_TIMEOUT_S", 30.0),
        max_inline_bytes=_env_int("MAX_INLINE_BYTES", 9 * 1024 * 1024),
        max_concurrency=_env_int("MAX_CONCURRENCY", 4),
        max_batch_jobs=_env_int("MAX_BATCH_JOBS", 1),
        batch_wait_ms=_env_float("BATCH_WAIT_MS", 10.0),
        align_processes=_env_int("ALIGN_PROCESSES", -1),
        torch_compile=_env_bool("TORCH_COMPILE", False),
        cuda_graphs=_env_bool("CUDA_GRAPHS", True),
        hf_offline=_env_bool("HF_HUB_OFFLINE", False),
    )
