"""Randomly initialised F5-TTS and Vocos in exactly the on-disk format of the real weights.

Tests and offline demos load these through the production loader. The layout
mirrors the hub repositories:

    <dir>/F5TTS_v1_Tiny.yaml                              model config (f5_tts configs format)
    <dir>/F5-TTS/F5TTS_v1_Tiny/model_1.safetensors        EMA weights, ``ema_model.`` keys
    <dir>/F5-TTS/F5TTS_v1_Tiny/vocab.txt
    <dir>/F5-TTS/F5TTS_v1_Tiny_fr/model_1.safetensors     a second model: same network, its own vocabulary
    <dir>/F5-TTS/F5TTS_v1_Tiny_fr/vocab.txt               (French letters, as a community checkpoint has)
    <dir>/vocos-mel-24khz/config.yaml + pytorch_model.bin  shared by both, as the released models share Vocos

``ensure_random_models`` writes the same layout for a full-size f5_tts config
(e.g. F5TTS_v1_Base) with a full-size Vocos, and ``ensure_random_ctc`` the CTC
aligner's checkpoint, for benchmarks without the weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from f5_worker.tts.architecture import build_cfm
from f5_worker.tts.weights import ModelFiles

TINY_NAME = "F5TTS_v1_Tiny"
TINY_FR_DIR = "F5TTS_v1_Tiny_fr"
# The second tiny model's vocabulary: space first (f5-tts reads index 0 as "unknown"), then what French text
# needs. Its size differs from f5-tts's default vocabulary, so mixing the two up is caught at load.
TINY_FR_VOCAB = (" ", *"!'(),-.:;?", *"0123456789", *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                 *"àâäçéèêëîïôöùûüÿœæÀÂÇÉÈÊËÎÏÔÙÛÜŒÆ«»")

TINY_MODEL_YAML = """\
model:
  name: F5TTS_v1_Tiny
  tokenizer: custom
  backbone: DiT
  arch:
    dim: 64
    depth: 2
    heads: 2
    ff_mult: 2
    text_dim: 32
    text_mask_padding: True
    qk_norm: null
    conv_layers: 1
    pe_attn_head: null
    attn_backend: torch
    attn_mask_enabled: False
    checkpoint_activations: False
  mel_spec:
    target_sample_rate: 24000
    n_mel_channels: 100
    hop_length: 256
    win_length: 1024
    n_fft: 1024
    mel_spec_type: vocos
"""

# Vocos config.yaml in the format of charactr/vocos-mel-24khz; only the backbone size varies
VOCOS_YAML = """\
feature_extractor:
  class_path: vocos.feature_extractors.MelSpectrogramFeatures
  init_args:
    sample_rate: 24000
    n_fft: 1024
    hop_length: 256
    n_mels: 100
    padding: center

backbone:
  class_path: vocos.models.VocosBackbone
  init_args:
    input_channels: 100
    dim: {dim}
    intermediate_dim: {intermediate_dim}
    num_layers: {num_layers}

head:
  class_path: vocos.heads.ISTFTHead
  init_args:
    dim: {dim}
    n_fft: 1024
    hop_length: 256
    padding: center
"""

TINY_VOCOS_YAML = VOCOS_YAML.format(dim=32, intermediate_dim=64, num_layers=1)


def _tiny_files(root: Path, name: str, folder: str) -> ModelFiles:
    """Both tiny models share the network's config and the vocoder; each has its own weights and vocab."""
    model_dir = root / "F5-TTS" / folder
    return ModelFiles(
        name=name,
        config_path=root / f"{TINY_NAME}.yaml",
        ckpt_path=model_dir / "model_1.safetensors",
        vocab_path=model_dir / "vocab.txt",
        vocoder_dir=root / "vocos-mel-24khz",
    )


def tiny_model_files(root: Path) -> ModelFiles:
    return _tiny_files(root, "tiny", TINY_NAME)


def tiny_fr_model_files(root: Path) -> ModelFiles:
    """The second tiny model: the tiny network with a French vocabulary (a registry entry names these paths)."""
    return _tiny_files(root, "tiny-fr", TINY_FR_DIR)


def _write_checkpoint(paths, seed: int) -> None:
    """A random F5-TTS checkpoint for ``paths.config_path`` and ``paths.vocab_path``, with ``ema_model.`` keys."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    cfm, *_ = build_cfm(paths.config_path, paths.vocab_path)
    with torch.no_grad():  # upstream zero-initialises adaLN and output layers; trained weights are never all zero
        for param in cfm.parameters():
            if param.is_floating_point() and not param.any():
                param.normal_(0.0, 0.02)
    state = {f"ema_model.{k}": v.contiguous() for k, v in cfm.state_dict().items()}
    save_file(state, str(paths.ckpt_path))


def _write_models(paths, model_yaml: str, vocos_yaml: str, seed: int) -> None:
    """Write a random F5-TTS checkpoint and Vocos for the given configs, in the hub repositories' format."""
    import torch
    from vocos import Vocos

    paths.ckpt_path.parent.mkdir(parents=True)
    paths.vocoder_dir.mkdir(parents=True)
    paths.config_path.write_text(model_yaml)
    shutil.copyfile(str(files("f5_tts").joinpath("infer/examples/vocab.txt")), paths.vocab_path)
    _write_checkpoint(paths, seed)  # Vocos draws next from the same generator, as it always has

    (paths.vocoder_dir / "config.yaml").write_text(vocos_yaml)
    vocos = Vocos.from_hparams(str(paths.vocoder_dir / "config.yaml"))
    torch.save(vocos.state_dict(), paths.vocoder_dir / "pytorch_model.bin")


# Bumped whenever the tiny models' values change, so that a cached older set is rebuilt.
# 2: the layers f5-tts zero-initialises are random too: with a zero output projection the DiT
#    predicted nothing and every comparison of its outputs held trivially.
# 3: a second model with a French vocabulary (tiny_fr_model_files).
TINY_VERSION = "3"


def write_tiny_models(root: Path, seed: int = 0) -> None:
    """Write the tiny checkpoints into ``root`` (which must not exist yet)."""
    _write_models(tiny_model_files(root), TINY_MODEL_YAML, TINY_VOCOS_YAML, seed)
    fr = tiny_fr_model_files(root)
    fr.ckpt_path.parent.mkdir(parents=True)
    fr.vocab_path.write_text("".join(f"{symbol}\n" for symbol in TINY_FR_VOCAB), encoding="utf-8")
    _write_checkpoint(fr, seed + 1)
    (Path(root) / ".version").write_text(TINY_VERSION)


def _ensure(root: Path, paths, write, version: str | None = None) -> None:
    """Run ``write(staging_root)`` once under a file lock and move the result into ``root`` atomically.

    With a ``version``, a set written by another version (its ``.version`` file) is written again.
    """
    from filelock import FileLock

    def current() -> bool:
        files = (paths.config_path, paths.ckpt_path, paths.vocab_path, paths.vocoder_dir / "config.yaml",
                 paths.vocoder_dir / "pytorch_model.bin")
        if not all(f.is_file() for f in files):  # one gone (deleted by hand): the set is written again
            return False
        marker = root / ".version"
        return version is None or (marker.is_file() and marker.read_text().strip() == version)

    if current():
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if current():
            return
        staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root.parent))
        try:
            write(staging / "m")
            if root.exists():  # an older version, or a half-written dir from an older, non-atomic build
                shutil.rmtree(root)
            os.replace(staging / "m", root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def ensure_tiny_models(root: Path):
    """Build the tiny models once (under a file lock, atomically) and return their paths."""
    root = Path(root)
    paths = tiny_model_files(root)
    _ensure(root, paths, write_tiny_models, TINY_VERSION)
    return paths


# -- full-size random weights (benchmarks: same compute as the released weights) -----------------

# charactr/vocos-mel-24khz's config.yaml: the vocoder F5-TTS uses
FULL_VOCOS_YAML = VOCOS_YAML.format(dim=512, intermediate_dim=1536, num_layers=8)


def random_model_files(root: Path, config_name: str = "F5TTS_v1_Base"):
    model_dir = root / "F5-TTS" / config_name
    return ModelFiles(
        name=config_name,
        config_path=root / f"{config_name}.yaml",
        ckpt_path=model_dir / "model_0.safetensors",
        vocab_path=model_dir / "vocab.txt",
        vocoder_dir=root / "vocos-mel-24khz",
    )


def upstream_config_text(config_name: str) -> str:
    path = files("f5_tts").joinpath(f"configs/{config_name}.yaml")
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in files("f5_tts").joinpath("configs").iterdir())
        raise ValueError(f"{config_name!r} is not an f5_tts model config; known: {known}")
    return path.read_text()


def ensure_random_models(root: Path, config_name: str = "F5TTS_v1_Base", seed: int = 0):
    """Full-size random weights for an f5_tts config (e.g. F5TTS_v1_Base) plus a full-size random Vocos.

    The architecture, file format and therefore the compute per step are those of
    the released checkpoints; only the values are random (the speech is noise).
    Load them with DEFAULT_MODEL=<config_name>, MODEL_CKPT_PATH, MODEL_VOCAB_PATH, VOCODER_PATH.
    """
    root = Path(root)
    paths = random_model_files(root, config_name)
    model_yaml = upstream_config_text(config_name)
    _ensure(root, paths, lambda staging: _write_models(
        random_model_files(staging, config_name), model_yaml, FULL_VOCOS_YAML, seed))
    return paths


def ensure_random_ctc(torch_home: Path, seed: int = 0) -> Path:
    """torchaudio's English CTC aligner checkpoint (WAV2VEC2_ASR_BASE_960H) with random weights.

    Written where torchaudio keeps the real one (``$TORCH_HOME/hub/checkpoints``) and in its
    format, including the three output rows torchaudio drops on load, so that the worker's
    ``ALIGNER=auto`` picks the ctc backend as it does with the real weights in the image: same
    network, same compute; the emissions are noise, so the word times are not measured with it.
    """
    import torch
    import torchaudio
    from torchaudio.models import wav2vec2_model

    bundle = torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H
    path = Path(torch_home) / "hub" / "checkpoints" / Path(str(bundle._path)).name  # noqa: SLF001
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    state = wav2vec2_model(**bundle._params).state_dict()  # noqa: SLF001
    for key in ("aux.weight", "aux.bias"):  # torchaudio removes rows _remove_aux_axis of the hosted file
        rows = list(state[key])
        for index in sorted(bundle._remove_aux_axis):  # noqa: SLF001
            rows.insert(index, torch.zeros_like(rows[0]))
        state[key] = torch.stack(rows)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, staging)
    os.replace(staging, path)
    return path
