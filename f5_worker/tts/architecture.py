"""The F5-TTS network a model config describes, built from f5-tts's own classes (weights not loaded)."""

from __future__ import annotations

from pathlib import Path

from f5_worker.errors import summary
from f5_worker.logs import echo
from f5_worker.tts.f5_imports import f5_model_classes
from f5_worker.tts.weights import ModelUnavailableError

# The mel settings a model config must give, and the range each may take. A value out of range would not
# fail the load but every job, deep inside sampling (hop_length 0: ZeroDivisionError; target_sample_rate -1:
# a ValueError of the resampler); a rate over the top makes every reference a resampling bomb.
MEL_RANGES = {
    "target_sample_rate": (8000, 192000),
    "n_fft": (16, 16384),
    "win_length": (1, "n_fft"),  # torch's STFT takes no window longer than its FFT
    "hop_length": (1, "win_length"),  # a longer hop would skip audio between windows
    "n_mel_channels": (1, 512),
}


def mel_settings(mel, config_name: str) -> dict[str, int]:
    """The config's mel settings, each a whole number in its range (MEL_RANGES), else ModelUnavailableError."""
    values: dict[str, int] = {}
    for key, (low, high) in MEL_RANGES.items():
        value = mel.get(key)
        limit, named = (values[high], f" (its {high})") if isinstance(high, str) else (high, "")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
            raise ModelUnavailableError(f"{config_name}: model.mel_spec.{key} must be a whole number from {low} to "
                                        f"{limit}{named} (got {echo(value)})")
        values[key] = value
    return values


def read_vocab(vocab_path: Path) -> dict[str, int]:
    """A ``vocab.txt``: one symbol a line, each the index of its line (0, a space, stands for any symbol missing).

    Exactly as f5-tts's ``get_tokenizer`` reads it (UTF-8, any line ends, each line's last character taken for
    its line end), since a model's weights learned that reading: a last line without a line end loses its last
    character there too. A file that is not UTF-8 is a ModelUnavailableError naming it, not a
    UnicodeDecodeError's traceback at start.
    """
    try:
        text = vocab_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelUnavailableError(f"vocabulary {vocab_path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                                    f"at {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ModelUnavailableError(f"vocabulary {vocab_path} cannot be read ({exc.strerror or summary(exc)})") from None
    lines = text.split("\n")
    last = lines.pop()  # "" after a last line end; otherwise a last line without one, cut as get_tokenizer cuts it
    if last:
        lines.append(last[:-1])
    return {symbol: index for index, symbol in enumerate(lines)}


def build_cfm(config_path: Path, vocab_path: Path):
    """An F5-TTS CFM with the architecture a config file describes (weights not loaded)."""
    from omegaconf import DictConfig, OmegaConf

    CFM, backbones = f5_model_classes()  # noqa: N806 - first: it keeps f5_tts.model's heavy __init__ from running

    try:
        cfg = OmegaConf.load(str(config_path))
        model = cfg.get("model") if isinstance(cfg, DictConfig) else None
        mel = model.get("mel_spec") if isinstance(model, DictConfig) else None
        if not isinstance(mel, DictConfig) or not isinstance(model.get("arch"), DictConfig):
            raise ModelUnavailableError(f"{config_path.name}: not an f5-tts model config (it needs model.arch and "
                                        "model.mel_spec)")
        mel_type = mel.get("mel_spec_type")
        values = mel_settings(mel, config_path.name)
        backbone = model.get("backbone")
        arch = OmegaConf.to_container(model.arch, resolve=True)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - YAML and OmegaConf raise many types for a file that is not a config
        raise ModelUnavailableError(f"{config_path.name}: not an f5-tts model config ({summary(exc, limit=200)})") from None
    if mel_type != "vocos":
        raise ModelUnavailableError(f"{config_path.name}: only the vocos vocoder is supported, not {echo(mel_type)}")
    if not isinstance(backbone, str) or backbone not in backbones:
        raise ModelUnavailableError(f"{config_path.name}: model.backbone must be one of {', '.join(backbones)} "
                                    f"(got {echo(backbone)})")
    vocab_char_map = read_vocab(vocab_path)
    transformer = backbones[backbone](**arch, text_num_embeds=len(vocab_char_map), mel_dim=values["n_mel_channels"])
    cfm = CFM(
        transformer=transformer,
        mel_spec_kwargs=dict(**values, mel_spec_type=mel_type),
        odeint_kwargs=dict(method="euler"),
        vocab_char_map=vocab_char_map,
    )
    return cfm, vocab_char_map, values["target_sample_rate"], values["hop_length"]
