"""Shared fixtures: one tiny-model worker per test session, built through the production loader."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

# Property tests: no per-example deadline anywhere (a loaded 2-core machine is not a slow parser), and under CI
# the same examples on every run, so a commit's result does not depend on the draw. A failure found while
# developing is kept as an @example on its test.
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VOICE_WAV = Path(str(files("f5_tts").joinpath("infer/examples/basic/basic_ref_en.wav")))
DEFAULT_VOICE_TEXT = "Some call me nature, others call me mother nature."


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from f5_worker.tts.tiny_models import ensure_tiny_models

    root = tmp_path_factory.mktemp("models") / "tiny"
    ensure_tiny_models(root)
    return root


@pytest.fixture(scope="session")
def tiny_settings(tiny_model_dir, tmp_path_factory):
    from f5_worker.config import Settings

    return Settings(
        default_model="tiny",
        tiny_model_dir=tiny_model_dir,
        network_volume_path=tmp_path_factory.mktemp("novolume") / "absent",
        hf_offline=True,
    )


@pytest.fixture(scope="session")
def worker(tiny_settings):
    from f5_worker.tts.loading import load_models
    from f5_worker.worker import Worker

    return Worker(tiny_settings, load_models(tiny_settings))


@pytest.fixture(scope="session")
def worker_env(tiny_model_dir, tmp_path_factory) -> dict[str, str]:
    """Environment for a runpod_handler.py subprocess on the tiny models."""
    env = dict(os.environ)
    env.update(
        DEFAULT_MODEL="tiny",
        TINY_MODEL_DIR=str(tiny_model_dir),
        NETWORK_VOLUME_PATH=str(tmp_path_factory.mktemp("novolume-sub") / "absent"),
        HF_HUB_OFFLINE="1",
        RUNPOD_LOG_LEVEL="INFO",
    )
    return env


def decode_b64_audio(b64: str) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float32")


def wav_base64(wave: np.ndarray, sample_rate: int, fmt: str = "WAV") -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, sample_rate, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


# The image smoke test's background run, started after collection when a selected container test will run.
from image_smoke import (  # noqa: E402,F401
    image_smoke_runs,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# A real S3-compatible server (SeaweedFS) for storage, voice and delivery tests.
from conftest_s3 import bucket_env, no_bucket_env, seaweed  # noqa: E402,F401


@pytest.fixture(scope="session")
def evalmod():
    """scripts/bench/eval_alignment.py as a module: its corpus, its espeak-ng cases and its scoring."""
    spec = importlib.util.spec_from_file_location("eval_alignment", REPO_ROOT / "scripts" / "bench" / "eval_alignment.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_alignment"] = module
    spec.loader.exec_module(module)
    return module
