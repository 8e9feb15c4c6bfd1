"""The tiny checkpoints are in the real on-disk format and load through the production loader."""

import dataclasses

import pytest
import torch
from safetensors import safe_open

from f5_worker.config import Settings, SettingsError
from f5_worker.tts.loading import load_checkpoint_state, load_models
from f5_worker.tts.registry import resolve_model_files
from f5_worker.tts.tiny_models import tiny_model_files
from f5_worker.tts.weights import ModelUnavailableError


def test_tiny_checkpoint_has_real_layout(tiny_model_dir):
    paths = tiny_model_files(tiny_model_dir)
    with safe_open(str(paths.ckpt_path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("ema_model.") for k in keys)
    assert any(k.startswith("ema_model.transformer.transformer_blocks.") for k in keys)
    assert (paths.vocoder_dir / "config.yaml").read_text().startswith("feature_extractor:")
    vocos_state = torch.load(paths.vocoder_dir / "pytorch_model.bin", weights_only=True)
    assert "backbone.embed.weight" in vocos_state and "head.out.weight" in vocos_state
    vocab = paths.vocab_path.read_text(encoding="utf-8").split("\n")
    assert vocab[0] == " "  # index 0 is space, as f5-tts requires


def test_both_tiny_models_load_through_production_loader(tiny_settings):
    models = load_models(tiny_settings)
    assert models.device == "cpu" and models.dtype == torch.float32
    assert models.sample_rate == 24000 and models.hop_length == 256
    state = load_checkpoint_state(models.files.ckpt_path)
    loaded = models.cfm.state_dict()
    for key, value in state.items():  # every stored weight ended up in the module
        assert torch.equal(loaded[key], value), key
    with torch.inference_mode():
        wave = models.vocoder.decode(torch.zeros(1, 100, 10))
    assert wave.shape[-1] == (10 - 1) * 256  # ISTFT with centre padding


def test_unknown_model_name_is_a_clear_error(tmp_path):
    settings = Settings(default_model="NoSuchModel", network_volume_path=tmp_path / "none", hf_offline=True)
    with pytest.raises(SettingsError, match="NoSuchModel.*tiny"):
        resolve_model_files(settings)


def test_offline_without_weights_names_what_is_missing(tmp_path):
    settings = Settings(default_model="F5TTS_v1_Base", network_volume_path=tmp_path / "none",
                        hf_home=tmp_path / "hf", hf_offline=True)
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model_files(settings)
    message = str(err.value)
    assert "SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors" in message
    assert "prefetch_models.py" in message and "docs/models.md" in message


def test_explicit_paths_take_precedence(tiny_model_dir, tmp_path):
    tiny = tiny_model_files(tiny_model_dir)
    settings = Settings(default_model="F5TTS_v1_Base", network_volume_path=tmp_path / "none", hf_offline=True,
                        model_ckpt_path=str(tiny.ckpt_path), vocoder_path=str(tiny.vocoder_dir))
    found = resolve_model_files(settings)
    assert found.ckpt_path == tiny.ckpt_path and found.vocoder_dir == tiny.vocoder_dir
    missing = dataclasses.replace(settings, vocoder_path=str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="config.yaml"):
        resolve_model_files(missing)


def test_hub_cache_on_volume_is_used(tiny_model_dir, tmp_path):
    """A checkpoint in the HF cache layout on the volume is found without any network."""
    from huggingface_hub import constants

    volume = tmp_path / "volume"
    cache = volume / "f5-worker" / "cache" / "huggingface" / "hub"
    tiny = tiny_model_files(tiny_model_dir)
    commit = "0" * 40
    for repo, filename, source in (
        ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors", tiny.ckpt_path),
        ("charactr/vocos-mel-24khz", "config.yaml", tiny.vocoder_dir / "config.yaml"),
        ("charactr/vocos-mel-24khz", "pytorch_model.bin", tiny.vocoder_dir / "pytorch_model.bin"),
    ):
        repo_dir = cache / f"models--{repo.replace('/', '--')}"
        target = repo_dir / "snapshots" / commit / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / constants.DEFAULT_REVISION).write_text(commit)
    settings = Settings(default_model="F5TTS_v1_Base", network_volume_path=volume, hf_offline=True)
    found = resolve_model_files(settings)
    assert found.ckpt_path.name == "model_1250000.safetensors"
    assert str(found.ckpt_path).startswith(str(cache))
    assert found.vocoder_dir == cache / "models--charactr--vocos-mel-24khz" / "snapshots" / commit


def test_model_dtype_setting(tiny_settings):
    from f5_worker.tts.loading import pick_dtype

    assert pick_dtype("auto", "cuda") == torch.float16 and pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("float16", "cpu") == torch.float16
    with pytest.raises(ModelUnavailableError, match="MODEL_DTYPE='bfloat16'.*time grid"):
        pick_dtype("bfloat16", "cuda")
    with pytest.raises(ModelUnavailableError, match="MODEL_DTYPE='int8'"):
        load_models(dataclasses.replace(tiny_settings, dtype="int8"))


def test_speed_settings_from_the_environment(monkeypatch):
    from f5_worker.config import get_settings

    defaults = get_settings()
    assert defaults.cuda_graphs and not defaults.torch_compile and defaults.align_processes == -1
    monkeypatch.setenv("CUDA_GRAPHS", "0")
    monkeypatch.setenv("TORCH_COMPILE", "1")
    monkeypatch.setenv("ALIGN_PROCESSES", "3")
    s = get_settings()
    assert not s.cuda_graphs and s.torch_compile and s.align_processes == 3


def test_cpu_models_are_neither_graphed_nor_compiled(tiny_settings):
    m = load_models(dataclasses.replace(tiny_settings, device="cpu"))
    assert not m.cuda_graphs and not m.compiled
    assert type(m.cfm.transformer).__name__ == "DiT"  # f5-tts's own module, called as upstream calls it


def test_speed_ups_apply_to_the_dit_backbone_only(tiny_settings):
    """CUDA graphs and TORCH_COMPILE know the DiT's structure; E2-TTS's UNetT must run as upstream runs it."""
    from f5_worker.tts.compile import is_dit
    from f5_worker.tts.f5_imports import f5_model_classes

    _, backbones = f5_model_classes()
    unet = backbones["UNetT"](dim=64, depth=2, heads=2, dim_head=32, ff_mult=2, text_num_embeds=10, mel_dim=100)
    assert not is_dit(unet)
    m = load_models(dataclasses.replace(tiny_settings, device="cpu"))
    assert is_dit(m.cfm.transformer)
