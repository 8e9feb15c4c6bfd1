"""Find and load F5-TTS (DiT inside CFM) and the Vocos vocoder, once per process.

Weights are looked up in this order: explicit paths from settings; the
Hugging Face cache (on the network volume when mounted); a hub download into
that cache. Offline with nothing cached is an error that says what to provide.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import types
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from f5_worker.settings import Settings
from f5_worker.weight_init import skipped_weight_init

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


def f5_model_classes():
    """Import CFM and the backbones without running ``f5_tts.model.__init__``.

    That ``__init__`` imports the Trainer, which drags in wandb, datasets and
    accelerate and costs seconds of cold start. Registering the package as a
    plain namespace first lets the submodules import on their own; ``fast_imports``
    keeps einx and librosa's scipy/numba stack out of cold start as well.
    """
    from f5_worker.fast_imports import lean_f5_imports

    if "f5_tts.model" not in sys.modules:
        spec = importlib.util.find_spec("f5_tts.model")
        package = types.ModuleType("f5_tts.model")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["f5_tts.model"] = package
    with lean_f5_imports():
        from f5_tts.model.backbones.dit import DiT
        from f5_tts.model.backbones.mmdit import MMDiT
        from f5_tts.model.backbones.unett import UNetT
        from f5_tts.model.cfm import CFM

    package = sys.modules["f5_tts.model"]
    for cls in (CFM, DiT, MMDiT, UNetT):
        setattr(package, cls.__name__, cls)
    return CFM, {"DiT": DiT, "MMDiT": MMDiT, "UNetT": UNetT}


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


def _hub_file(repo: str, filename: str, settings: Settings, what: str) -> Path:
    from huggingface_hub import hf_hub_download

    cache = settings.model_cache_dir / "hub"
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=True))
    except Exception:
        pass
    if settings.hf_offline:
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not in the model cache {cache} and HF_HUB_OFFLINE is set. "
            "Run scripts/prefetch_models.py with network access, set the explicit path "
            "(MODEL_CKPT_PATH / VOCODER_PATH), or use WORKER_MODEL=tiny for a random test model."
        )
    try:
        log.info("downloading %s from %s/%s into %s", what, repo, filename, cache)
        return Path(hf_hub_download(repo, filename, cache_dir=cache))
    except Exception as exc:
        raise ModelUnavailableError(
            f"{what} ({repo}/{filename}) is not cached in {cache} and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Run scripts/prefetch_models.py with network access, set the explicit path "
            "(MODEL_CKPT_PATH / VOCODER_PATH), or use WORKER_MODEL=tiny for a random test model."
        ) from None


def resolve_model_files(settings: Settings) -> ModelFiles:
    if settings.is_tiny:
        from f5_worker.tiny_models import ensure_tiny_models

        return ensure_tiny_models(settings.tiny_models_path)

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


def build_cfm(config_path: Path, vocab_path: Path):
    """An F5-TTS CFM with the architecture a config file describes (weights not loaded)."""
    from omegaconf import OmegaConf

    CFM, backbones = f5_model_classes()  # first: it keeps f5_tts.model's heavy __init__ from running
    from f5_tts.model.utils import get_tokenizer

    cfg = OmegaConf.load(str(config_path)).model
    mel = cfg.mel_spec
    if mel.mel_spec_type != "vocos":
        raise ModelUnavailableError(f"{config_path.name}: only the vocos vocoder is supported, not {mel.mel_spec_type}")
    vocab_char_map, vocab_size = get_tokenizer(str(vocab_path), "custom")
    arch = OmegaConf.to_container(cfg.arch, resolve=True)
    transformer = backbones[cfg.backbone](**arch, text_num_embeds=vocab_size, mel_dim=mel.n_mel_channels)
    cfm = CFM(
        transformer=transformer,
        mel_spec_kwargs=dict(
            n_fft=mel.n_fft,
            hop_length=mel.hop_length,
            win_length=mel.win_length,
            n_mel_channels=mel.n_mel_channels,
            target_sample_rate=mel.target_sample_rate,
            mel_spec_type=mel.mel_spec_type,
        ),
        odeint_kwargs=dict(method="euler"),
        vocab_char_map=vocab_char_map,
    )
    return cfm, vocab_char_map, int(mel.target_sample_rate), int(mel.hop_length)


COMPILE_BACKEND = "inductor"  # tests use "aot_eager": the same tracing and guards, no C compiler needed


def is_dit(transformer) -> bool:
    """f5-tts's DiT backbone (the F5-TTS models), as opposed to E2-TTS's UNetT."""
    _, backbones = f5_model_classes()
    return isinstance(transformer, backbones["DiT"])


def dit_blocks(transformer):
    """The DiT's blocks, whether or not the DiT is wrapped for CUDA graphs."""
    return getattr(transformer, "dit", transformer).transformer_blocks


def compile_transformer_blocks(transformer) -> None:
    """torch.compile each DiT block in place (regional compilation).

    The blocks hold nearly all of the compute and share one code path, so they
    share one compiled graph; the forward around them keeps f5-tts's per-thread
    text cache, which would otherwise split the graph and multiply recompiles.
    """
    for block in dit_blocks(transformer):
        block.compile(dynamic=True, backend=COMPILE_BACKEND)  # in place: parameter names stay as they are


def uncompile_transformer_blocks(transformer) -> None:
    for block in dit_blocks(transformer):
        block._compiled_call_impl = None  # noqa: SLF001 - what nn.Module.compile set


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

    model_files = resolve_model_files(settings)
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    with skipped_weight_init():  # every weight is loaded next, strictly: random init would be wasted
        cfm, vocab_char_map, sample_rate, hop_length = build_cfm(model_files.config_path, model_files.vocab_path)
        cfm.load_state_dict(load_checkpoint_state(model_files.ckpt_path), assign=True)  # adopt, don't copy
        cfm = cfm.to(device=device, dtype=dtype).eval()
        vocoder = load_vocos(model_files.vocoder_dir, device)
    dit = is_dit(cfm.transformer)  # the speed-ups know the DiT's structure; E2-TTS's UNetT runs as upstream
    if dit:
        from f5_worker.attention import use_broadcast_mask

        use_broadcast_mask(cfm.transformer.transformer_blocks)
    compiled = settings.torch_compile and dit
    if settings.torch_compile and not dit:
        log.warning("TORCH_COMPILE applies to DiT models only; %s runs without it", model_files.name)
    if compiled:  # compiles lazily: the engine's warm-up runs it before the first job
        compile_transformer_blocks(cfm.transformer)
    graphed = settings.cuda_graphs and device.startswith("cuda") and dit
    if graphed:
        from f5_worker.cuda_graphs import GraphedDiT

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
