"""The F5-TTS network a model config describes, built from f5-tts's own classes (weights not loaded)."""

from __future__ import annotations

from pathlib import Path

from f5_worker.tts.f5_imports import f5_model_classes
from f5_worker.tts.weights import ModelUnavailableError


def build_cfm(config_path: Path, vocab_path: Path):
    """An F5-TTS CFM with the architecture a config file describes (weights not loaded)."""
    from omegaconf import OmegaConf

    CFM, backbones = f5_model_classes()  # noqa: N806 - first: it keeps f5_tts.model's heavy __init__ from running
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
