"""Load F5-TTS (DiT inside CFM) and the Vocos vocoder onto the device, once per process."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from f5_worker.config import Settings
from f5_worker.tts.architecture import build_cfm
from f5_worker.tts.compile import compile_transformer_blocks, is_dit
from f5_worker.tts.tiny_models import ensure_tiny_models
from f5_worker.tts.weight_init import skipped_weight_init
from f5_worker.tts.weights import ModelFiles, ModelUnavailableError, resolve_model_files

log = logging.getLogger(__name__)


@dataclass
class LoadedModels:
    name: str
    files: ModelFiles
    cfm: object  # f5_tts.model.cfm.CFM
    vocoder: object  # vocos.Vocos
    vocab_char_map: dict
    device: str
    dtype: object  # torch.dtype
    compiled: bool
    cuda_graphs: bool
    sample_rate: int
    hop_length: int
    load_seconds: float


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(requested: str, device: str):
    """fp16 on GPU by default, as upstream; fp32 on CPU.

    No bfloat16: f5-tts's sampler builds its time grid in the model's dtype, and
    in bfloat16 a 32-step sway-sampled grid repeats values, which torchdiffeq
    refuses ("t must be strictly increasing"); seen on an H200.
    """
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16}
    if requested != "auto":
        if requested not in names:
            raise ModelUnavailableError(f"MODEL_DTYPE={requested!r}: use auto, float32 or float16 "
                                        "(f5-tts's sampler cannot run in bfloat16: its time grid repeats values)")
        return names[requested]
    return torch.float16 if device.startswith("cuda") else torch.float32


def load_checkpoint_state(ckpt_path: Path) -> dict:
    """The EMA weights of an F5-TTS checkpoint (.safetensors or .pt), as upstream reads them."""
    import torch

    if ckpt_path.suffix == ".safetensors":
        from safetensors.torch import load_file

        ema = load_file(str(ckpt_path), device="cpu")
    else:
        ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
        ema = ckpt.get("ema_model_state_dict", ckpt)
    state = {k.replace("ema_model.", "", 1): v for k, v in ema.items() if k not in ("initted", "step")}
    for key in ("mel_spec.mel_stft.mel_scale.fb", "mel_spec.mel_stft.spectrogram.window"):
        state.pop(key, None)
    return state


def load_vocos(vocoder_dir: Path, device: str):
    import torch
    from vocos import Vocos

    vocoder = Vocos.from_hparams(str(vocoder_dir / "config.yaml"))
    state = torch.load(str(vocoder_dir / "pytorch_model.bin"), map_location="cpu", weights_only=True)
    vocoder.load_state_dict(state)
    return vocoder.eval().to(device)


def load_models(settings: Settings) -> LoadedModels:
    started = time.perf_counter()
    import torch

    model_files = ensure_tiny_models(settings.tiny_models_path) if settings.is_tiny else resolve_model_files(settings)
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    with skipped_weight_init():  # every weight is loaded next, strictly: random init would be wasted
        cfm, vocab_char_map, sample_rate, hop_length = build_cfm(model_files.config_path, model_files.vocab_path)
        cfm.load_state_dict(load_checkpoint_state(model_files.ckpt_path), assign=True)  # adopt, don't copy
        cfm = cfm.to(device=device, dtype=dtype).eval()
        vocoder = load_vocos(model_files.vocoder_dir, device)
    dit = is_dit(cfm.transformer)  # the speed-ups know the DiT's structure; E2-TTS's UNetT runs as upstream
    if dit:
        from f5_worker.tts.attention import use_broadcast_mask  # here: the load's time includes these imports

        use_broadcast_mask(cfm.transformer.transformer_blocks)
    compiled = settings.torch_compile and dit
    if settings.torch_compile and not dit:
        log.warning("TORCH_COMPILE applies to DiT models only; %s runs without it", model_files.name)
    if compiled:  # compiles lazily: the engine's warm-up runs it before the first job
        compile_transformer_blocks(cfm.transformer)
    graphed = settings.cuda_graphs and device.startswith("cuda") and dit
    if graphed:
        from f5_worker.tts.cuda_graphs import GraphedDiT

        cfm.transformer = GraphedDiT(cfm.transformer)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    log.info("loaded %s on %s (%s) in %.2f s", model_files.name, device, dtype, seconds)
    return LoadedModels(
        name=model_files.name,
        files=model_files,
        cfm=cfm,
        vocoder=vocoder,
        vocab_char_map=vocab_char_map,
        device=device,
        dtype=dtype,
        compiled=compiled,
        cuda_graphs=graphed,
        sample_rate=sample_rate,
        hop_length=hop_length,
        load_seconds=seconds,
    )
