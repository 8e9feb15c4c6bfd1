"""Where a model's files are: explicit paths, the Hugging Face cache, or a hub download.

Weights are looked up in this order: explicit paths from settings; the
Hugging Face cache (on the network volume when mounted); a hub download into
that cache. Offline with nothing cached is an error that says what to provide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from f5_worker.config import Settings

log = logging.getLogger(__name__)

VOCOS_REPO = "charactr/vocos-mel-24khz"
# model config name -> (hub repo, file inside it), as upstream's F5TTS API resolves them
RELEASED_CHECKPOINTS = {
    "F5TTS_v1_Base": ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors"),
    "F5TTS_Base": ("SWivid/F5-TTS", "F5TTS_Base/model_1200000.safetensors"),
    "E2TTS_Base": ("SWivid/E2-TTS", "E2TTS_Base/model_1200000.safetensors"),
}


class ModelUnavailableError(RuntimeError):
    """The models cannot be set up as configured (weights missing, a bad setting); the message says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    name: str
    config_path: Path
    ckpt_path: Path
    vocab_path: Path
    vocoder_dir: Path


def _hub_file(repo: str, filename: str, settings: Settings, what: str) -> Path:
    from huggingface_hub import hf_hub_download

    cache = settings.model_cache_dir / "hub"
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or a broken cache entry): fall through to the download
        pass
    if settings.hf_offline:
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not in the model cache {cache} and HF_HUB_OFFLINE is set. "
            "Run scripts/ops/prefetch_models.py with network access, set the explicit path "
            "(MODEL_CKPT_PATH / VOCODER_PATH), or use WORKER_MODEL=tiny for a random test model."
        )
    try:
        log.info("downloading %s from %s/%s into %s", what, repo, filename, cache)
        return Path(hf_hub_download(repo, filename, cache_dir=cache))
    except Exception as exc:  # noqa: BLE001 - offline, refused, not found...: all say what to do instead
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not cached in {cache} and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Run scripts/ops/prefetch_models.py with network access, set the explicit path "
            "(MODEL_CKPT_PATH / VOCODER_PATH), or use WORKER_MODEL=tiny for a random test model."
        ) from None


def resolve_model_files(settings: Settings) -> ModelFiles:
    """The files of a released model, or of one named by explicit paths; downloaded only when allowed."""
    name = settings.worker_model
    config_path = Path(str(files("f5_tts").joinpath(f"configs/{name}.yaml")))
    if not config_path.is_file():
        known = sorted(p.stem for p in Path(str(files("f5_tts").joinpath("configs"))).glob("*.yaml"))
        raise ModelUnavailableError(f"WORKER_MODEL={name!r} is not an F5-TTS model config; known: {known} or 'tiny'")

    if settings.model_ckpt_path:
        ckpt = Path(settings.model_ckpt_path)
        if not ckpt.is_file():
            raise ModelUnavailableError(f"MODEL_CKPT_PATH={ckpt} does not exist")
    elif name in RELEASED_CHECKPOINTS:
        repo, filename = RELEASED_CHECKPOINTS[name]
        ckpt = _hub_file(repo, filename, settings, f"{name} checkpoint")
    else:
        raise ModelUnavailableError(f"{name} has no released checkpoint; set MODEL_CKPT_PATH to its weights")

    vocab = Path(settings.model_vocab_path) if settings.model_vocab_path else Path(
        str(files("f5_tts").joinpath("infer/examples/vocab.txt"))
    )
    if not vocab.is_file():
        raise ModelUnavailableError(f"MODEL_VOCAB_PATH={vocab} does not exist")

    if settings.vocoder_path:
        vocoder_dir = Path(settings.vocoder_path)
        missing = [f for f in ("config.yaml", "pytorch_model.bin") if not (vocoder_dir / f).is_file()]
        if missing:
            raise ModelUnavailableError(f"VOCODER_PATH={vocoder_dir} lacks {', '.join(missing)}")
    else:
        config = _hub_file(VOCOS_REPO, "config.yaml", settings, "Vocos vocoder config")
        _hub_file(VOCOS_REPO, "pytorch_model.bin", settings, "Vocos vocoder weights")
        vocoder_dir = config.parent
    return ModelFiles(name=name, config_path=config_path, ckpt_path=ckpt, vocab_path=vocab, vocoder_dir=vocoder_dir)
