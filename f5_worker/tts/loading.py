"""Load an F5-TTS model (DiT or UNetT inside CFM) and its Vocos vocoder onto the device.

A checkpoint is compared with the network its entry describes before its weights are assigned, so a
vocabulary or architecture that does not fit it is named plainly (``vocab has 2546 symbols, the
checkpoint's text embedding 2545``) instead of torch's list of size mismatches, the error users of
community checkpoints meet most.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from f5_worker.config import Settings
from f5_worker.errors import summary
from f5_worker.logs import echo
from f5_worker.tts.architecture import build_cfm
from f5_worker.tts.compile import compile_transformer_blocks, is_dit
from f5_worker.tts.registry import resolve_model_files
from f5_worker.tts.weight_init import skipped_weight_init
from f5_worker.tts.weights import ModelFiles, ModelUnavailableError, not_a_file

log = logging.getLogger(__name__)

TEXT_EMBEDDING_KEY = "transformer.text_embed.text_embed.weight"  # rows: vocabulary size + 1 (0 pads), DiT and UNetT


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

    @property
    def weight_bytes(self) -> int:
        """The model's parameters and buffers, in bytes: what keeping it loaded costs (the vocoder is shared)."""
        return sum(t.numel() * t.element_size() for t in (*self.cfm.parameters(), *self.cfm.buffers()))


class VocoderCache:
    """Vocoders by folder and device: models that use the same Vocos share one copy."""

    def __init__(self):
        self._lock = threading.Lock()
        self._vocoders: dict[tuple[str, str], object] = {}

    @staticmethod
    def _key(vocoder_dir: Path, device: str) -> tuple[str, str]:
        return str(Path(vocoder_dir).resolve()), device

    def add(self, vocoder_dir: Path, device: str, vocoder) -> None:
        """A vocoder loaded elsewhere (the default model's, at start-up), for later models to share."""
        with self._lock:
            self._vocoders.setdefault(self._key(vocoder_dir, device), vocoder)

    def get(self, vocoder_dir: Path, device: str):
        key = self._key(vocoder_dir, device)
        with self._lock:  # loads are rare and Vocos is small: one at a time keeps two copies from being made
            if key not in self._vocoders:
                self._vocoders[key] = load_vocos(Path(vocoder_dir), device)
            return self._vocoders[key]

    def __len__(self) -> int:
        return len(self._vocoders)


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
    """The EMA weights of an F5-TTS checkpoint (.safetensors or .pt), as upstream reads them.

    A file that is no checkpoint (an empty one, a text file, a checkpoint of something else) is a
    ModelUnavailableError naming the file and what was found: torch's own errors for one ("EOFError: ",
    "IndexError: list index out of range") say nothing of either.
    """
    import torch

    problem = not_a_file(ckpt_path)  # a device or a FIFO would be read for ever
    if problem:
        raise ModelUnavailableError(f"checkpoint {ckpt_path} {problem}")
    try:
        if ckpt_path.stat().st_size == 0:
            raise ModelUnavailableError(f"checkpoint {ckpt_path} is empty")
        if ckpt_path.suffix == ".safetensors":
            from safetensors.torch import load_file

            ema = load_file(str(ckpt_path), device="cpu")
        else:
            ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
            ema = ckpt.get("ema_model_state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    except ModelUnavailableError:
        raise
    except OSError as exc:
        raise ModelUnavailableError(f"checkpoint {ckpt_path} cannot be read ({exc.strerror or summary(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - torch and safetensors raise many types for a file that is not theirs
        kind = "a safetensors file" if ckpt_path.suffix == ".safetensors" else "a PyTorch checkpoint (.pt)"
        raise ModelUnavailableError(f"checkpoint {ckpt_path} is not {kind} ({why_not_weights(exc)})") from None
    if not isinstance(ema, dict):
        raise ModelUnavailableError(f"checkpoint {ckpt_path} holds a {type(ema).__name__}, not a model's weights "
                                    "(names and tensors)")
    odd = next((k for k, v in ema.items() if not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        raise ModelUnavailableError(f"checkpoint {ckpt_path} is not a model's weights: its entry {echo(odd)} "
                                    f"holds {type(ema[odd]).__name__}, not a tensor")
    state = {k.replace("ema_model.", "", 1): v for k, v in ema.items() if k not in ("initted", "step")}
    for key in ("mel_spec.mel_stft.mel_scale.fb", "mel_spec.mel_stft.spectrogram.window"):
        state.pop(key, None)
    return state


def why_not_weights(exc: Exception) -> str:
    """What torch or safetensors said of a file that is not weights, in one line."""
    if isinstance(exc, pickle.UnpicklingError):  # torch's message would advise weights_only=False: unsafe
        return "torch reads only tensors and plain data from a checkpoint, and this file holds something else"
    return summary(exc, limit=200)


def check_checkpoint_fits(name: str, cfm, state: dict, vocab_size: int, architecture: str) -> None:
    """Refuse a checkpoint that does not fit the network, naming what differs, before torch would."""
    expected = cfm.state_dict()
    rows = state.get(TEXT_EMBEDDING_KEY)
    if rows is not None and TEXT_EMBEDDING_KEY in expected and rows.shape[0] != vocab_size + 1:
        raise ModelUnavailableError(
            f"{json.dumps(name)}: vocab has {vocab_size} symbols, the checkpoint's text embedding {rows.shape[0] - 1}; "
            "use the vocab.txt published with the checkpoint")
    integral = next(((k, state[k].dtype) for k, v in expected.items()
                     if k in state and v.is_floating_point() and not state[k].is_floating_point()), None)
    if integral is not None:  # torch's own refusal lists every weight, each with a line of its own
        key, dtype = integral
        raise ModelUnavailableError(
            f"{json.dumps(name)}: the checkpoint holds whole numbers ({dtype}), not floating-point weights, in {key}; "
            "use a checkpoint of float16 or float32 weights (a quantized one cannot be loaded)")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or wrong):
        return
    if wrong:
        key, theirs, ours = wrong[0]
        detail = f"{key} is {theirs} in the checkpoint, {ours} in {architecture}"
    else:
        detail = (f"the checkpoint lacks {missing[0]}" if missing else f"the checkpoint has {unexpected[0]}, "
                  f"which {architecture} does not")
    count = len(missing) + len(unexpected) + len(wrong)
    raise ModelUnavailableError(
        f"{json.dumps(name)}: the checkpoint does not fit architecture {architecture} ({detail}"
        f"{f'; {count - 1} more differences' if count > 1 else ''}); give the entry the architecture it was "
        "trained with")


def load_vocos(vocoder_dir: Path, device: str):
    """A Vocos vocoder from its folder; a config or weights file that is not one (cut short, another model's)
    is a ModelUnavailableError naming the file, not torch's or YAML's traceback at start."""
    import torch
    from vocos import Vocos

    config, weights = vocoder_dir / "config.yaml", vocoder_dir / "pytorch_model.bin"
    try:
        vocoder = Vocos.from_hparams(str(config))
    except Exception as exc:  # noqa: BLE001 - YAML and Vocos raise many types for a file that is not its config
        raise ModelUnavailableError(f"vocoder {config} is not a Vocos config ({summary(exc, limit=200)})") from None
    try:
        vocoder.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file that is not these weights
        raise ModelUnavailableError(f"vocoder {weights} is not the weights of the Vocos its config describes "
                                    f"({why_not_weights(exc)})") from None
    return vocoder.eval().to(device)


def load_models(settings: Settings) -> LoadedModels:
    """The default model, as the settings register it (tts/registry.py)."""
    return load_model(resolve_model_files(settings), settings)


def load_model(model_files: ModelFiles, settings: Settings, vocoders: VocoderCache | None = None) -> LoadedModels:
    """One model onto the device, its checkpoint checked against its architecture first; its vocoder from
    ``vocoders`` when another model already uses it."""
    started = time.perf_counter()
    import torch

    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    with skipped_weight_init():  # every weight is loaded next, strictly: random init would be wasted
        cfm, vocab_char_map, sample_rate, hop_length = build_cfm(model_files.config_path, model_files.vocab_path)
        state = load_checkpoint_state(model_files.ckpt_path)
        check_checkpoint_fits(model_files.name, cfm, state, len(vocab_char_map), model_files.config_path.stem)
        cfm.load_state_dict(state, assign=True)  # adopt, don't copy
        del state
        cfm = cfm.to(device=device, dtype=dtype).eval()
        vocoder = (vocoders or VocoderCache()).get(model_files.vocoder_dir, device)
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
