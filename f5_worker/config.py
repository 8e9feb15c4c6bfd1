"""The worker's settings: the only module that reads the environment.

RunPod endpoints are configured through environment variables, so every knob a
deployer may turn is one; docs/configuration.md lists them all, together with
the boot's (``setup_network_venv.py`` reads those, standard library only, and
``tests/test_config.py`` checks that the names both read agree). Each default
is written once, as a field default of ``Settings`` or a constant here; ``VARIABLES`` names the variable
each field is read from and how, and ``get_settings`` hands each reader its field's default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from f5_worker.logs import hide_credentials, keep_secret

TINY_MODEL = "tiny"
DEFAULT_MODEL = "F5TTS_v1_Base"
REGISTRY_FILE_NAME = "models.json"  # the model registry file's default name, in the worker's folder on the volume
DEFAULT_NETWORK_VOLUME = Path("/runpod-volume")  # where RunPod mounts an endpoint's network volume
# where RunPod puts the Hugging Face repository named in an endpoint's "Model" field (its cached models), in the
# hub's cache layout: models--<org>--<name>/snapshots/<hash>/; there with or without a network volume
DEFAULT_CACHED_MODELS = Path("/runpod-volume/huggingface-cache/hub")
DEFAULT_ASR_MODEL = "openai/whisper-large-v3-turbo"  # transcribes uploaded voices sent without ref_text
DEFAULT_URL_EXPIRY_S = 3600  # links to results in the bucket, seconds
MAX_URL_EXPIRY_S = 604_800  # 7 days: S3's limit for a link signed with Signature Version 4; a longer one never works
DEFAULT_REF_AUDIO_KEEP_SECONDS = 12.0  # seconds of a reference or uploaded voice kept, cut at a pause
DEFAULT_RUNPOD_LOG_LEVEL = "INFO"  # runpod's own default, DEBUG, logs every job's input
# The levels both runpod (its RunPodLogger, which reads RUNPOD_LOG_LEVEL when imported) and Python's logging
# know; WARNING is logging's name for runpod's WARN.
RUNPOD_LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
# The longest a wait or timeout setting may be, in seconds (a day): no wait a worker makes needs more, and past
# about 10^9 s the platform's timers overflow, so a job would fail deep inside (OverflowError) or hang.
MAX_WAIT_SECONDS = 86_400

ALIGNER_KINDS = ("auto", "ctc", "sphinx", "dtw", "estimate")
SERVE_MODES = ("queue", "http")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MIN_TOKEN_CHARS = 16  # API_TOKEN: shorter is too easy to guess
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750's b64token: what a bearer token may hold
_TRUE = ("1", "true", "yes", "on")


class SettingsError(ValueError):
    """A setting the worker cannot start with; the message names the variable (runpod_handler exits with it).

    A URL the message quotes has its user name and password hidden (logs.hide_credentials)."""

    def __init__(self, message: str):
        super().__init__(hide_credentials(message))


# What to do instead of a user name and password in a URL, where there is a proper place for them.
_CREDENTIALS_GO = {"BUCKET_ENDPOINT_URL": "give the bucket's keys in BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY"}


def refuse_credentials(name: str, value: str | None) -> None:
    """Stop the worker when a setting holds a URL with a user name or password (``https://user:secret@host``).

    Whatever shows a URL (``health``, a job's error, a log line) would show them too; a setting is the
    deployer's, so it is refused at start rather than quietly trimmed. The message shows the URL with its
    user information hidden (logs.hide_credentials)."""
    if value and hide_credentials(value) != value:
        instead = _CREDENTIALS_GO.get(name, "remove the user information (the part before '@')")
        raise SettingsError(f"{name} must not hold a user name or password in a URL "
                            f"({hide_credentials(value.strip())[:200]}); {instead}")


def network_volume_from_env(env: Mapping[str, str] | None = None, *,
                            default: Path | None = DEFAULT_NETWORK_VOLUME) -> Path | None:
    """``NETWORK_VOLUME_PATH``: unset means ``/runpod-volume``; set to "" means no volume, as the boot
    (start.sh, setup_network_venv.py) reads it, e.g. to keep off a read-only volume."""
    raw = (os.environ if env is None else env).get("NETWORK_VOLUME_PATH")
    refuse_credentials("NETWORK_VOLUME_PATH", raw)
    if raw is None:
        return default
    return Path(raw.strip()) if raw.strip() else None


def data_dir_for(volume: Path | None) -> Path:
    """Where the worker keeps its own files (voices, results, tiny models): on the volume when one is mounted."""
    if volume is not None and volume.is_dir():
        return volume / "f5-worker"
    return Path("data").resolve()


# -- storage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketSettings:
    """RunPod's bucket variables, plus the few knobs an S3-compatible service may need."""

    endpoint_url: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    name: str
    region: str = "us-east-1"
    addressing_style: str = "path"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    max_attempts: int = 3
    call_timeout_s: float = 30.0  # every call, its attempts and waits together (storage/bucket.py)


@dataclass(frozen=True)
class StorageSettings:
    """Where voices and results go. A bucket whose settings cannot be used is disabled with the reason
    (``bucket_error``, shown by ``health``) instead of stopping the worker: voices then stay local."""

    local_root: Path
    volume_mounted: bool
    bucket: BucketSettings | None
    bucket_error: str | None
    url_expiry_s: int = DEFAULT_URL_EXPIRY_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 network_volume_path: Path | None = None) -> StorageSettings:
        """Read the environment; ``network_volume_path`` overrides ``NETWORK_VOLUME_PATH`` (Settings has it)."""
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            refuse_credentials(name, value)
            return value.strip() if value and value.strip() else default

        volume = Path(network_volume_path) if network_volume_path is not None else network_volume_from_env(env)
        mounted = volume is not None and volume.is_dir()
        problems: list[str] = []  # settings the bucket cannot be used with: it is disabled, and health says why

        def number(name: str, default: float, kind: type = float, most: float = MAX_WAIT_SECONDS):
            raw = get(name, str(default))
            try:
                value = kind(raw)
            except ValueError:
                value = None
            if value is None or not 0 < value < float("inf"):
                problems.append(f"{name} must be a positive {'whole ' if kind is int else ''}number (got {raw!r})")
                return kind(default)
            if value > most:  # a longer wait overflows the platform's timers; a longer link never works
                problems.append(f"{name} must be at most {most:g} (got {raw!r})")
                return kind(default)
            return value

        expiry = number("URL_EXPIRY_S", DEFAULT_URL_EXPIRY_S, int, MAX_URL_EXPIRY_S)
        bucket, bucket_error = None, None
        endpoint = get("BUCKET_ENDPOINT_URL")
        key_id, secret = get("BUCKET_ACCESS_KEY_ID"), get("BUCKET_SECRET_ACCESS_KEY")
        if endpoint or key_id or secret:
            missing = [n for n, v in (("BUCKET_ENDPOINT_URL", endpoint), ("BUCKET_ACCESS_KEY_ID", key_id),
                                      ("BUCKET_SECRET_ACCESS_KEY", secret)) if not v]
            parts = urlsplit(endpoint or "")
            # A bucket may also be named by the endpoint's path (https://host/bucket).
            name = get("BUCKET_NAME") or parts.path.strip("/").split("/")[0] or None
            if missing:
                bucket_error = f"bucket disabled: {', '.join(missing)} not set"
            elif parts.scheme not in ("http", "https") or not parts.hostname:
                bucket_error = "bucket disabled: BUCKET_ENDPOINT_URL must be an http(s) URL"
            elif not name:
                bucket_error = "bucket disabled: BUCKET_NAME not set"
            else:
                defaults = BucketSettings("", "", "", "")
                region = get("BUCKET_REGION") or _region_from_host(parts.hostname) or defaults.region
                style = get("BUCKET_ADDRESSING_STYLE", defaults.addressing_style).lower()
                if style not in ("path", "virtual", "auto"):
                    problems.append(f"BUCKET_ADDRESSING_STYLE must be path, virtual or auto (got {style!r})")
                bucket = BucketSettings(
                    endpoint_url=f"{parts.scheme}://{parts.netloc}",
                    access_key_id=key_id,
                    secret_access_key=secret,
                    name=name,
                    region=region,
                    addressing_style=style,
                    connect_timeout_s=number("BUCKET_CONNECT_TIMEOUT_S", defaults.connect_timeout_s),
                    read_timeout_s=number("BUCKET_READ_TIMEOUT_S", defaults.read_timeout_s),
                    max_attempts=number("BUCKET_MAX_ATTEMPTS", defaults.max_attempts, int, float("inf")),
                    call_timeout_s=number("BUCKET_TIMEOUT_S", defaults.call_timeout_s),
                )
                if problems:
                    bucket, bucket_error = None, "bucket disabled: " + "; ".join(problems)
        return cls(data_dir_for(volume), mounted, bucket, bucket_error, url_expiry_s=expiry)


def _region_from_host(host: str) -> str | None:
    """``s3.us-west-004.backblazeb2.com`` -> ``us-west-004`` (SigV4 needs the right region)."""
    match = re.match(r"^(?:[^.]+\.)?s3[.-]([a-z]{2}(?:-[a-z]+)+-\d+)\.", host)
    return match.group(1) if match else None


# -- the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    default_model: str = DEFAULT_MODEL  # the default model's name: DEFAULT_MODEL (or WORKER_MODEL, its older name)
    model_ckpt_path: str | None = None
    model_vocab_path: str | None = None
    vocoder_path: str | None = None
    network_volume_path: Path | None = DEFAULT_NETWORK_VOLUME  # None: no volume (NETWORK_VOLUME_PATH="")
    hf_home: Path | None = None
    cached_models_dir: Path = DEFAULT_CACHED_MODELS  # hub files are looked for here first (tts/weights.py)
    tiny_model_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    aligner: str = "auto"
    max_ref_audio_seconds: float = 120.0
    ref_audio_keep_seconds: float = DEFAULT_REF_AUDIO_KEEP_SECONDS  # a reference is trimmed to this (tts/reference.py)
    max_download_bytes: int = 50 * 1024 * 1024
    download_timeout_s: float = 30.0
    max_inline_bytes: int = 9 * 1024 * 1024
    max_concurrency: int = 4
    max_batch_jobs: int = 1  # jobs per sampling call; batching measured no gain (docs/performance.md)
    batch_wait_ms: float = 10.0
    align_processes: int = -1  # -1: auto (docs/performance.md); 0: align in the worker process
    align_onsets: bool = True  # word starts and ends moved to where the sound rises and falls (docs/timings.md)
    torch_compile: bool = False  # torch.compile the DiT's blocks at load (docs/performance.md)
    cuda_graphs: bool = True  # replay the DiT's blocks from CUDA graphs on GPU (docs/performance.md)
    hf_offline: bool = False
    asr_model: str = DEFAULT_ASR_MODEL
    asr_language: str | None = None  # None: Whisper detects each upload's language
    pause_s: float = 0.5  # ``[pause]`` without a length, seconds (docs/api.md, "Scripts")
    paragraph_pause_s: float = 0.6  # between paragraphs (a blank line) where no pause is written, seconds
    max_pause_s: float = 10.0  # the longest single pause, seconds
    max_total_pause_s: float = 60.0  # all pauses of one job together, seconds
    max_segments: int = 50  # turns in a synthesize job's ``segments``
    max_script_parts: int = 200  # runs of text between tags in one synthesize job, each sampled on its own
    caption_speaker_prefix: bool = True  # SRT captions name the speaker at each change of voice (docs/timings.md)
    streaming: bool = False  # the handler streams (docs/api.md, "Streaming"): every result becomes a list
    result_dump_dir: Path | None = None  # local debugging: each job's whole result as a file (runpod cuts logs)
    models_json: str | None = None  # MODELS: model entries as JSON text, parsed by tts/registry.py
    model_registry_file: Path | None = None  # None: <volume>/f5-worker/models.json when a volume is mounted
    max_loaded_models: int = 2  # models kept loaded at once, the default model included
    max_model_memory_gb: float = 0.0  # GB of weights kept loaded; 0: half the GPU's memory (no bound on CPU)
    serve: str = "queue"  # queue: RunPod's queue worker; http: the HTTP server (http_server.py, docs/http.md)
    port: int = 80  # SERVE=http: the port it listens on (RunPod's load-balancing endpoints set PORT)
    port_health: int = 0  # SERVE=http: a second port the server (so /ping) listens on; 0: PORT alone
    api_token: str | None = field(default=None, repr=False)  # SERVE=http: the bearer token every route but /ping needs
    # python -m f5_worker.page --endpoint: the key its forwarder sends to RunPod (never to the page); not the worker's
    runpod_api_key: str | None = field(default=None, repr=False)

    @property
    def volume_mounted(self) -> bool:
        return self.network_volume_path is not None and self.network_volume_path.is_dir()

    @property
    def data_dir(self) -> Path:
        """Where the worker keeps its own files: on the volume when there is one."""
        return data_dir_for(self.network_volume_path)

    @property
    def model_cache_dir(self) -> Path:
        """The Hugging Face cache: ``HF_HOME`` if set, else on the volume, else the user cache."""
        if self.hf_home is not None:
            return self.hf_home
        if self.volume_mounted:
            return self.data_dir / "cache" / "huggingface"
        return Path.home() / ".cache" / "huggingface"

    @property
    def registry_file(self) -> Path | None:
        """The model registry file: ``MODEL_REGISTRY_FILE``, else ``models.json`` in the worker's folder on the
        volume (read only if it exists)."""
        if self.model_registry_file is not None:
            return self.model_registry_file
        return self.data_dir / REGISTRY_FILE_NAME if self.volume_mounted else None

    @property
    def tiny_models_path(self) -> Path:
        return self.tiny_model_dir or self.data_dir / "models" / "tiny"


def _env(name: str, default: str | None = None) -> str | None:
    """A variable's value; one that is empty or only spaces (an endpoint's field left blank) counts as unset."""
    value = os.environ.get(name)
    refuse_credentials(name, value)
    return value if value is not None and value.strip() else default


def _env_secret(name: str, default: str | None) -> str | None:
    """A key, as pasted: spaces and a line end around it dropped (a key read from a file ends with one); hidden
    in every log line from here on (logs.keep_secret)."""
    value = (_env(name) or "").strip()
    if value:
        keep_secret(value)
    return value or default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in _TRUE


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


def _env_seconds(name: str, default: float) -> float:
    value = _env_float(name, default)
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name} must be a number of seconds, 0 or more (got {_env(name)!r})")
    return value


def _env_positive_seconds(name: str, default: float) -> float:
    value = _env_float(name, default)
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be a positive number of seconds (got {_env(name)!r})")
    return value


def _env_timeout(name: str, default: float) -> float:
    """A timeout in seconds: positive, and at most MAX_WAIT_SECONDS."""
    value = _env_float(name, default)
    if not 0 < value <= MAX_WAIT_SECONDS:
        raise SettingsError(f"{name} must be a positive number of seconds, at most {MAX_WAIT_SECONDS} "
                            f"(got {_env(name)!r})")
    return value


def _env_wait_ms(name: str, default: float) -> float:
    """A wait in milliseconds: 0 or more, and at most MAX_WAIT_SECONDS."""
    value = _env_float(name, default)
    if not 0 <= value <= MAX_WAIT_SECONDS * 1000:
        raise SettingsError(f"{name} must be a number of milliseconds from 0 to {MAX_WAIT_SECONDS * 1000} "
                            f"(got {_env(name)!r})")
    return value


def _env_port(name: str, default: int) -> int:
    value = _env_int(name, default)
    if not 0 < value < 65536:
        raise SettingsError(f"{name} must be a port number, 1 to 65535 (got {value})")
    return value


def _env_health_port(name: str, default: int) -> int:
    """``PORT_HEALTH``: a port, or 0 (or unset) for the same as ``PORT``."""
    value = _env_int(name, default)
    if not 0 <= value < 65536:
        raise SettingsError(f"{name} must be a port number, 1 to 65535, or 0 for PORT's (got {value})")
    return value


def _env_token(name: str, default: str | None) -> str | None:
    """``API_TOKEN``: a bearer token of at least MIN_TOKEN_CHARS characters, hidden in every log line from
    here on (logs.keep_secret). A value refused for its form is not quoted."""
    value = (_env(name) or "").strip()
    if not value:
        return default
    if len(value) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(value):
        raise SettingsError(f"{name} must be at least {MIN_TOKEN_CHARS} characters of A-Z, a-z, 0-9 and -._~+/, "
                            f"with = only at the end (a bearer token's characters; got {len(value)} characters); "
                            "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    keep_secret(value)
    return value


def _env_one_of(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    """A reader of a variable that names one of ``choices`` (any case, spaces around ignored)."""

    def read(name: str, default: str) -> str:
        value = _env(name, default).strip().lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
        return value

    return read


def _env_device(name: str, default: str) -> str:
    value = _env(name, default).strip().lower()
    if not _DEVICE.fullmatch(value):
        raise SettingsError(f"{name} must be one of auto, cpu, cuda or cuda:N (got {value!r})")
    return value


def _env_path(name: str, default: Path | None) -> Path | None:
    """A folder or file; spaces around it dropped, as the boot drops them (``/x `` is no folder anyone meant)."""
    value = _env(name)
    return Path(value.strip()) if value else default


def _env_volume(name: str, default: Path | None) -> Path | None:
    return network_volume_from_env(default=default)


def _env_default_model(name: str, default: str) -> str:
    """``DEFAULT_MODEL``, or ``WORKER_MODEL`` (its older name); both set to different models is refused."""
    new, old = _env(name), _env(OLDER_NAMES[name])
    if new and old and new.strip() != old.strip():
        raise SettingsError(f"DEFAULT_MODEL={new!r} and WORKER_MODEL={old!r} disagree; WORKER_MODEL is the older "
                            "name of DEFAULT_MODEL: set one of them")
    return (new or old or default).strip()


def _env_at_least_one(name: str, default: int) -> int:
    value = _env_int(name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1 (got {value})")
    return value


def _env_processes(name: str, default: int) -> int:
    """``ALIGN_PROCESSES``: 0 or more; unset, the field's default (-1: chosen for the device)."""
    value = _env_int(name, default)
    if _env(name) is not None and value < 0:
        raise SettingsError(f"{name} must be 0 or more (got {value}); leave it unset for the automatic number")
    return value


def _env_memory_gb(name: str, default: float) -> float:
    value = _env_float(name, default)
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name} must be 0 (automatic) or a positive number (got {value})")
    return value


# Each field of Settings: the variable it is read from, and how. The default is the field's (Settings), passed
# to the reader when the variable is unset; nothing here or in get_settings writes a default of its own.
VARIABLES: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "default_model": ("DEFAULT_MODEL", _env_default_model),
    "model_ckpt_path": ("MODEL_CKPT_PATH", _env),
    "model_vocab_path": ("MODEL_VOCAB_PATH", _env),
    "vocoder_path": ("VOCODER_PATH", _env),
    "network_volume_path": ("NETWORK_VOLUME_PATH", _env_volume),
    "hf_home": ("HF_HOME", _env_path),
    "cached_models_dir": ("CACHED_MODELS_DIR", _env_path),
    "tiny_model_dir": ("TINY_MODEL_DIR", _env_path),
    "device": ("DEVICE", _env_device),
    "dtype": ("MODEL_DTYPE", _env),
    "aligner": ("ALIGNER", _env_one_of(ALIGNER_KINDS)),
    "max_ref_audio_seconds": ("MAX_REF_AUDIO_SECONDS", _env_positive_seconds),
    "ref_audio_keep_seconds": ("REF_AUDIO_KEEP_SECONDS", _env_positive_seconds),
    "max_download_bytes": ("MAX_DOWNLOAD_BYTES", _env_at_least_one),
    "download_timeout_s": ("DOWNLOAD_TIMEOUT_S", _env_timeout),
    "max_inline_bytes": ("MAX_INLINE_BYTES", _env_at_least_one),
    "max_concurrency": ("MAX_CONCURRENCY", _env_at_least_one),  # 0: a worker that takes no job, ever
    "max_batch_jobs": ("MAX_BATCH_JOBS", _env_at_least_one),
    "batch_wait_ms": ("BATCH_WAIT_MS", _env_wait_ms),
    "align_processes": ("ALIGN_PROCESSES", _env_processes),
    "align_onsets": ("ALIGN_ONSETS", _env_bool),
    "torch_compile": ("TORCH_COMPILE", _env_bool),
    "cuda_graphs": ("CUDA_GRAPHS", _env_bool),
    "hf_offline": ("HF_HUB_OFFLINE", _env_bool),
    "asr_model": ("ASR_MODEL", _env),
    "asr_language": ("ASR_LANGUAGE", _env),
    "pause_s": ("PAUSE_S", _env_seconds),
    "paragraph_pause_s": ("PARAGRAPH_PAUSE_S", _env_seconds),
    "max_pause_s": ("MAX_PAUSE_S", _env_seconds),
    "max_total_pause_s": ("MAX_TOTAL_PAUSE_S", _env_seconds),
    "max_segments": ("MAX_SEGMENTS", _env_at_least_one),
    "max_script_parts": ("MAX_SCRIPT_PARTS", _env_at_least_one),
    "caption_speaker_prefix": ("CAPTION_SPEAKER_PREFIX", _env_bool),
    "streaming": ("STREAMING", _env_bool),
    "result_dump_dir": ("RESULT_DUMP_DIR", _env_path),
    "models_json": ("MODELS", _env),
    "model_registry_file": ("MODEL_REGISTRY_FILE", _env_path),
    "max_loaded_models": ("MAX_LOADED_MODELS", _env_at_least_one),
    "max_model_memory_gb": ("MAX_MODEL_MEMORY_GB", _env_memory_gb),
    "serve": ("SERVE", _env_one_of(SERVE_MODES)),
    "port": ("PORT", _env_port),
    "port_health": ("PORT_HEALTH", _env_health_port),
    "api_token": ("API_TOKEN", _env_token),
    "runpod_api_key": ("RUNPOD_API_KEY", _env_secret),
}
OLDER_NAMES = {"DEFAULT_MODEL": "WORKER_MODEL"}  # a variable's older name, still read


def get_settings() -> Settings:
    """Read the settings from the environment (call once per process, or per test)."""
    # The bucket's settings are read with the stores (StorageSettings), after the models are loaded: a URL
    # that must stop the worker stops it here, at once.
    refuse_credentials("BUCKET_ENDPOINT_URL", os.environ.get("BUCKET_ENDPOINT_URL"))
    values = {}
    for f in fields(Settings):
        name, read = VARIABLES[f.name]
        values[f.name] = read(name, f.default)
    settings = Settings(**values)
    # A set value past its bound would refuse every job that uses it, naming the job's text, not the setting.
    # Unset, the default is not held to a lower bound (MAX_PAUSE_S=0: no pauses at all, [pause] included).
    for name, value, bound, bound_name in (
            ("REF_AUDIO_KEEP_SECONDS", settings.ref_audio_keep_seconds, settings.max_ref_audio_seconds,
             "MAX_REF_AUDIO_SECONDS"),
            ("PAUSE_S", settings.pause_s, settings.max_pause_s, "MAX_PAUSE_S"),
            ("PARAGRAPH_PAUSE_S", settings.paragraph_pause_s, settings.max_total_pause_s, "MAX_TOTAL_PAUSE_S")):
        if _env(name) is not None and value > bound:
            raise SettingsError(f"{name} ({value:g}) must be at most {bound_name} ({bound:g})")
    return settings


# -- read where they are used, before any Settings exist ----------------------------------------


def private_downloads_allowed() -> bool:
    """``RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS``: let URLs reach private addresses (a trusted network only).

    Read at each download, so a test or an operator can change it without a restart."""
    return (_env("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS") or "").strip().lower() in _TRUE[:3]


def lean_imports_enabled() -> bool:
    """``F5_WORKER_LEAN_IMPORTS=0`` turns off the import shims of tts/f5_imports.py (to rule them out)."""
    return (_env("F5_WORKER_LEAN_IMPORTS") or "1").strip().lower() not in ("0", "false", "no", "off")


def runpod_local_test_mode(argv: list[str]) -> bool:
    """Whether runpod-python will run one test job and exit (``--test_input``, or no ``--rp_serve_api`` and
    no job queue: ``RUNPOD_WEBHOOK_GET_JOB``, set by RunPod, is absent). That mode calls the handler once
    and cannot iterate a streaming (generator) handler."""
    if any(a == "--test_input" or a.startswith("--test_input=") for a in argv):
        return True
    if any(a == "--rp_serve_api" for a in argv):
        return False
    return not os.environ.get("RUNPOD_WEBHOOK_GET_JOB")


def runpod_log_level() -> str:
    """``RUNPOD_LOG_LEVEL``, in any case, defaulted and written back for runpod too: it reads the variable
    itself when imported, and refuses with a traceback what it does not know (an empty value, ``WARNING``),
    as Python's logging refuses ``TRACE``. SettingsError for a level neither knows."""
    raw = _env("RUNPOD_LOG_LEVEL", DEFAULT_RUNPOD_LOG_LEVEL)
    level = {"WARNING": "WARN"}.get(raw.strip().upper(), raw.strip().upper())
    if level not in RUNPOD_LOG_LEVELS:
        raise SettingsError(f"RUNPOD_LOG_LEVEL must be one of {', '.join(RUNPOD_LOG_LEVELS)} (got {raw!r})")
    os.environ["RUNPOD_LOG_LEVEL"] = level
    return level
