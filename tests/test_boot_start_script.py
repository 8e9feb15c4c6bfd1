"""scripts/boot/start.sh (phases, hand-off to the venv's python) and scripts/ops/prefetch_models.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "boot_fixtures" / "small_a"

# Stands in for runpod_handler.py: reports how start.sh started it.
REPORTING_HANDLER = r'''
import fcntl, json, os, sys
fd = os.open(os.environ["F5_VENV_USE_LOCK"], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held = False
except BlockingIOError:
    held = True  # start.sh's shared lock, inherited across exec
import numpy
print(json.dumps({"prefix": sys.prefix, "argv": sys.argv[1:], "cwd": os.getcwd(), "use_lock_held": held,
                  "hf_home": os.environ.get("HF_HOME"), "numpy": numpy.__version__}))
'''


def uv_cache_dir() -> str:
    return os.environ.get("UV_CACHE_DIR") or subprocess.run(
        [os.environ.get("UV", "uv"), "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def app(tmp_path):
    """An app dir laid out like the image's /app, with the small stand-in lock."""
    app = tmp_path / "app"
    (app / "scripts" / "boot").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(FIXTURE / name, app / name)
    shutil.copy(REPO / "setup_network_venv.py", app)
    shutil.copy(REPO / "scripts" / "boot" / "start.sh", app / "scripts" / "boot")
    (app / "runpod_handler.py").write_text(REPORTING_HANDLER)
    yield app
    shutil.rmtree(tmp_path, ignore_errors=True)


def start_env(app: Path, volume: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("F5_", "VIRTUAL_ENV", "HF_HOME", "TORCH_HOME"))}
    env.update({
        "F5_APP_DIR": str(app), "NETWORK_VOLUME_PATH": str(volume), "F5_LOCAL_ROOT": str(app.parent / "local"),
        "F5_VENV_VERIFY_IMPORTS": "numpy,packaging", "F5_VENV_MIN_FREE_MB": "100", "UV_CACHE_DIR": uv_cache_dir(),
        # start.sh runs the image's python3: here the interpreter under .venv
        "PATH": f"{Path(os.path.realpath(getattr(sys, '_base_executable', sys.executable))).parent}:{env['PATH']}",
    })
    env.update(extra)
    return env


def test_start_sh_logs_phases_and_execs_the_venv_python(app, tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    run = subprocess.run(["bash", str(app / "scripts" / "boot" / "start.sh"), "--rp_serve_api", "x y"],
                         env=start_env(app, volume), capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["prefix"].startswith(str(volume / "f5-worker" / "venvs" / "py3"))
    assert report["argv"] == ["--rp_serve_api", "x y"], "arguments pass through unchanged"
    assert report["cwd"] == str(app), "test_input.json is found next to the handler"
    assert report["use_lock_held"], "the handler keeps the venv's use lock for its whole life"
    assert report["hf_home"] == str(volume / "f5-worker" / "cache" / "huggingface")
    for phase in ("preflight", "venv", "handoff"):
        assert f"phase {phase}:" in run.stderr
    assert "phase venv done in " in run.stderr
    assert "boot took " in run.stderr
    assert ", image 0.1.0\n" in run.stderr, "an image built without F5_IMAGE_VERSION is labelled pyproject's version"


def test_start_sh_failure_names_the_phase_and_exits_non_zero(app, tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    run = subprocess.run(["bash", str(app / "scripts" / "boot" / "start.sh")],
                         env=start_env(app, volume, F5_UV="/nonexistent/uv", F5_IMAGE_VERSION="0.1.0+abc1234"),
                         capture_output=True, text=True, timeout=120)
    assert ", image 0.1.0+abc1234\n" in run.stderr, "the build's (or the endpoint's) F5_IMAGE_VERSION wins"
    assert run.returncode == 1
    assert "ERROR: /nonexistent/uv not found" in run.stderr
    assert "BOOT FAILED in phase 'venv' (exit 1)" in run.stderr
    assert run.stdout == "", "the handler never started"


def prefetch(volume: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "TORCH_HOME")}
    base.update({"NETWORK_VOLUME_PATH": str(volume), "HF_HUB_OFFLINE": "1", **env})
    return subprocess.run([sys.executable, str(REPO / "scripts" / "ops" / "prefetch_models.py"), *args], env=base,
                          capture_output=True, text=True, timeout=300)


def test_prefetch_targets_the_volume_cache(tmp_path):
    plain = prefetch(tmp_path, "--dry-run")  # auto aligns English with sphinx: no aligner weights by default
    assert plain.returncode == 0, plain.stderr
    assert "torchaudio://" not in plain.stdout
    run = prefetch(tmp_path, "--dry-run", "--multilingual", "--english-ctc")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    hub = tmp_path / "f5-worker" / "cache" / "huggingface" / "hub"
    torch_checkpoints = tmp_path / "f5-worker" / "cache" / "torch" / "hub" / "checkpoints"
    assert f"hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors -> {hub}" in lines[0]
    assert sum(line.endswith(f"-> {hub}") for line in lines) == 3
    assert sum(line.endswith(f"-> {torch_checkpoints}") for line in lines) == 2  # en + multilingual


def fake_hub_entry(hub: Path, repo: str, filename: str) -> None:
    """A file laid out as huggingface_hub caches it (tiny placeholder contents)."""
    root = hub / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0" * 40)
    target = root / "snapshots" / ("0" * 40) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("placeholder")


def test_prefetch_offline_reports_missing_files_and_accepts_cached_ones(tmp_path):
    missing = prefetch(tmp_path, "--no-aligner")
    assert missing.returncode == 1
    assert missing.stderr.count("prefetch: FAILED") == 3
    assert "check network access to huggingface.co" in missing.stderr

    hub = tmp_path / "f5-worker" / "cache" / "huggingface" / "hub"
    fake_hub_entry(hub, "SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors")
    fake_hub_entry(hub, "charactr/vocos-mel-24khz", "config.yaml")
    fake_hub_entry(hub, "charactr/vocos-mel-24khz", "pytorch_model.bin")
    cached = prefetch(tmp_path, "--no-aligner")
    assert cached.returncode == 0, cached.stderr
    assert cached.stderr.count("  ok: ") == 3
