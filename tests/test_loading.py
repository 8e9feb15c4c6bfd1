"""The tiny checkpoints are in the real on-disk format and load through the production loader."""

import dataclasses
import json

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


@pytest.mark.parametrize("change", ["as published", "no last line end", "Windows line ends"])
def test_a_vocabulary_is_read_exactly_as_f5_tts_reads_it(tiny_model_dir, tmp_path, change):
    """A model's weights learned f5-tts's reading of its vocab.txt (get_tokenizer takes each line's last
    character for its line end): the same symbols at the same indices, however the file's lines end."""
    from f5_tts.model.utils import get_tokenizer

    from f5_worker.tts.architecture import build_cfm

    tiny = tiny_model_files(tiny_model_dir)
    text = tiny.vocab_path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    other = tmp_path / "vocab.txt"
    if change == "no last line end":
        text = text.removesuffix("\n")
    elif change == "Windows line ends":
        text = text.replace("\n", "\r\n")
    other.write_bytes(text.encode("utf-8"))
    _, read, *_ = build_cfm(tiny.config_path, other)
    expected, size = get_tokenizer(str(other), "custom")
    assert read == expected and len(read) == size


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


# --- RunPod's cached models: the endpoint's "Model" repository, on the host before the worker starts ---------

def place_cached(root, repo: str, files: dict, snapshot: str = "317b7eb96312eda0c431d1dab1af958a308cb35e"):
    """``files`` (name in the repository -> source) as RunPod's docs lay a cached model out:
    <root>/models--<org>--<name>/snapshots/<hash>/<name>, and nothing else (no refs/, no blobs/)."""
    folder = root / f"models--{repo.replace('/', '--')}" / "snapshots" / snapshot
    for name, source in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(source.read_bytes())
    return folder


def test_a_cached_model_on_the_endpoint_is_loaded_from_runpods_layout(tiny_model_dir, tmp_path, monkeypatch):
    """A checkpoint and vocabulary in the exact layout RunPod documents, found through CACHED_MODELS_DIR and
    loaded by the production loader, offline; the vocoder, from another repository, comes from elsewhere
    (here a folder, as the image or the volume would hold it)."""
    from f5_worker.config import get_settings

    tiny = tiny_model_files(tiny_model_dir)
    root = tmp_path / "runpod-volume" / "huggingface-cache" / "hub"
    snapshot = place_cached(root, "someone/f5-tts-tiny", {"tiny/model_1.safetensors": tiny.ckpt_path,
                                                          "tiny/vocab.txt": tiny.vocab_path})
    entry = {"name": "tiny-cached", "architecture": str(tiny.config_path),
             "checkpoint": "hf://someone/f5-tts-tiny/tiny/model_1.safetensors",
             "vocab": "hf://someone/f5-tts-tiny/tiny/vocab.txt", "vocoder": str(tiny.vocoder_dir)}
    for name, value in {"CACHED_MODELS_DIR": str(root), "DEFAULT_MODEL": "tiny-cached", "MODELS": json.dumps([entry]),
                        "NETWORK_VOLUME_PATH": str(tmp_path / "absent"), "HF_HOME": str(tmp_path / "hf"),
                        "HF_HUB_OFFLINE": "1", "DEVICE": "cpu"}.items():
        monkeypatch.setenv(name, value)
    models = load_models(get_settings())
    assert models.files.ckpt_path == snapshot / "tiny" / "model_1.safetensors"
    assert models.files.vocab_path == snapshot / "tiny" / "vocab.txt"
    loaded = models.cfm.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in load_checkpoint_state(tiny.ckpt_path).items())


def test_the_cached_model_comes_before_the_volumes_cache_and_the_vocoder_from_the_volume(tiny_model_dir, tmp_path):
    """F5-TTS's repository as the endpoint's cached model: the built-in model's checkpoint is read from there even
    with a copy in the volume's cache, and Vocos (the one other repository) from the volume's cache."""
    from huggingface_hub import constants

    tiny = tiny_model_files(tiny_model_dir)
    root = tmp_path / "cached"
    snapshot = place_cached(root, "SWivid/F5-TTS", {"F5TTS_v1_Base/model_1250000.safetensors": tiny.ckpt_path})
    volume = tmp_path / "volume"
    cache = volume / "f5-worker" / "cache" / "huggingface" / "hub"
    for repo, name, source in (("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors", tiny.ckpt_path),
                               ("charactr/vocos-mel-24khz", "config.yaml", tiny.vocoder_dir / "config.yaml"),
                               ("charactr/vocos-mel-24khz", "pytorch_model.bin", tiny.vocoder_dir / "pytorch_model.bin")):
        place_cached(cache, repo, {name: source}, "0" * 40)
        (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir(exist_ok=True)
        (cache / f"models--{repo.replace('/', '--')}" / "refs" / constants.DEFAULT_REVISION).write_text("0" * 40)
    settings = Settings(default_model="F5TTS_v1_Base", network_volume_path=volume, hf_offline=True,
                        cached_models_dir=root)
    found = resolve_model_files(settings)
    assert found.ckpt_path == snapshot / "F5TTS_v1_Base" / "model_1250000.safetensors"
    assert found.vocoder_dir == cache / "models--charactr--vocos-mel-24khz" / "snapshots" / ("0" * 40)
    # without the vocoder anywhere, the error says where the worker looked, the cached models included
    bare = dataclasses.replace(settings, network_volume_path=tmp_path / "absent", hf_home=tmp_path / "hf")
    with pytest.raises(ModelUnavailableError, match=f"charactr/vocos-mel-24khz/config.yaml.*cached models {root}"):
        resolve_model_files(bare)


def test_of_several_cached_snapshots_refs_main_wins_then_the_newest(tiny_model_dir, tmp_path):
    import os

    from f5_worker.tts.weights import cached_model_file

    tiny = tiny_model_files(tiny_model_dir)
    root = tmp_path / "cached"
    old = place_cached(root, "org/name", {"vocab.txt": tiny.vocab_path}, "a" * 40)
    new = place_cached(root, "org/name", {"vocab.txt": tiny.vocab_path}, "b" * 40)
    os.utime(old, (1_000_000, 1_000_000))
    assert cached_model_file(root, "org/name", "vocab.txt") == new / "vocab.txt"
    (root / "models--org--name" / "refs").mkdir()
    (root / "models--org--name" / "refs" / "main").write_text("a" * 40)
    assert cached_model_file(root, "org/name", "vocab.txt") == old / "vocab.txt"
    assert cached_model_file(root, "org/name", "absent.txt") is None
    assert cached_model_file(root, "org/other", "vocab.txt") is None
    assert cached_model_file(tmp_path / "nothing", "org/name", "vocab.txt") is None


def test_tiny_weights_that_cannot_be_written_stop_the_worker_naming_the_folder(tmp_path):
    """DEFAULT_MODEL=tiny writes its random weights on first use, into TINY_MODEL_DIR (on the volume by default):
    on a read-only volume, or under a file, the worker ended with an OSError's traceback at start."""
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "tiny"
    settings = Settings(default_model="tiny", tiny_model_dir=folder, network_volume_path=tmp_path / "none",
                        hf_offline=True)
    with pytest.raises(ModelUnavailableError, match=f"^tiny: its random weights cannot be written to {folder} "
                                                    r"\(.+\); set TINY_MODEL_DIR to a folder it may write$"):
        resolve_model_files(settings)


def test_tiny_models_with_a_file_gone_are_written_again(tmp_path):
    """Only the checkpoint was looked for: a tiny model folder missing its vocoder's config or its vocabulary
    (deleted by hand, a copy cut short) was taken as written, and the worker could not start."""
    from f5_worker.tts.tiny_models import ensure_tiny_models

    root = tmp_path / "tiny"
    paths = ensure_tiny_models(root)
    for gone in (paths.vocoder_dir / "config.yaml", paths.vocab_path, paths.config_path):
        gone.unlink()
        ensure_tiny_models(root)
        assert gone.is_file(), gone
    settings = Settings(default_model="tiny", tiny_model_dir=root, network_volume_path=tmp_path / "none",
                        hf_offline=True)
    assert load_models(settings).name == "tiny"
