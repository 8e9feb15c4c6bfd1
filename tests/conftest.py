"""Shared fixtures: one tiny-model worker per test session, built through the production loader; and the HTTP
servers tests start over it (a worker process, or an app under uvicorn in this process)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from hypothesis import settings as hypothesis_settings
from ports import free_port, free_ports  # noqa: F401 (free_port: for the test modules)

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
SERVER_START_S = 180  # a hang guard for a server's start (a model load) on a busy 2-core machine, not a speed requirement
SERVER_STOP_S = 60  # a hang guard for a server's graceful stop before it is killed
LOG_WAIT_S = 120  # a hang guard for a line a test waits for in a log (a job at a stage), not a speed requirement


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
def tiny_44k_entry(tiny_model_dir, tmp_path_factory) -> dict:
    """A registry entry (MODELS) for the tiny model speaking at 44.1 kHz: its config's target_sample_rate."""
    from f5_worker.tts.tiny_models import tiny_model_files

    tiny = tiny_model_files(tiny_model_dir)
    architecture = tmp_path_factory.mktemp("rate") / "F5TTS_v1_Tiny_44k.yaml"
    architecture.write_text(tiny.config_path.read_text().replace("target_sample_rate: 24000",
                                                                 "target_sample_rate: 44100"))
    return {"name": "tiny-44k", "architecture": str(architecture), "checkpoint": str(tiny.ckpt_path),
            "vocab": str(tiny.vocab_path), "vocoder": str(tiny.vocoder_dir), "license": "none"}


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


# -- servers over real HTTP: the worker's own process, and an app under uvicorn in this process -----------------


def wait_for(url: str, status: int, seconds: float, proc: subprocess.Popen | None = None,
             log_path: Path | None = None) -> list[int]:
    """Poll ``url`` until it answers ``status``; every status seen, in order (connection refused: 0). Fails at once
    if ``proc`` has exited, with the end of its log."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = log_path.read_text(errors="replace")[-3000:] if log_path is not None else ""
            raise AssertionError(f"the server exited with {proc.returncode}\n{log}")
        try:
            code = requests.get(url, timeout=5).status_code
        except requests.ConnectionError:
            code = 0
        if not seen or seen[-1] != code:
            seen.append(code)
        if code == status:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {status}: {seen}")


def wait_for_log(read_log: Callable[[], str], pattern: str, seconds: float = LOG_WAIT_S) -> re.Match:
    """Poll the log ``read_log`` returns (``lambda: caplog.text``, a log file's ``read_text``) until ``pattern``
    matches it; the match. Fails past ``seconds`` with the end of the log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if match := re.search(pattern, read_log()):
            return match
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r} in:\n{read_log()[-3000:]}")


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], workdir: Path, log_name: str = "server.log"):
    """``args`` run in ``workdir`` (where a worker keeps its data when it has no volume), stdout and stderr in
    ``workdir/log_name``, until the block ends: then SIGTERM, as a platform stops it, and SIGKILL past
    SERVER_STOP_S; the end of its log is printed (pytest shows it with a failure). Yields (process, log path)."""
    log_path = workdir / log_name
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(f"{log_name}:\n{log_path.read_text(errors='replace')[-3000:]}")


@dataclasses.dataclass(frozen=True)
class HandlerServer:
    """A running ``SERVE=http python runpod_handler.py`` (or runpod's local API server, ``--rp_serve_api``)."""

    proc: subprocess.Popen
    url: str  # its base URL, every route
    health_url: str  # PORT_HEALTH's base URL when one was asked for, else url
    log_path: Path


@contextlib.contextmanager
def http_server_process(env: dict[str, str], workdir: Path, health_port: bool = False, **variables: str):
    """``SERVE=http python runpod_handler.py`` (``env``: worker_env, the tiny models) with ALIGNER=estimate and
    ``variables``, on a free PORT (and a free PORT_HEALTH with ``health_port``), from the moment its /ping answers
    200 until the block ends; yields a HandlerServer."""
    port, health = free_ports(2) if health_port else free_ports(1) * 2
    env = dict(env, SERVE="http", PORT=str(port), ALIGNER="estimate", **variables)
    if health_port:
        env["PORT_HEALTH"] = str(health)
    with running([sys.executable, str(REPO_ROOT / "runpod_handler.py")], env, workdir) as (proc, log_path):
        seen = wait_for(f"http://127.0.0.1:{health}/ping", 200, SERVER_START_S, proc, log_path)
        assert set(seen) <= {0, 204, 200}, seen  # refused until it listens, 204 while loading, then 200
        yield HandlerServer(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health}", log_path)


@contextlib.contextmanager
def serving(app, **config):
    """``app`` under uvicorn in a thread of this process, on a free loopback port, from the moment it has started
    until the block ends: then stopped as SIGTERM stops it (``should_exit``). ``config``: uvicorn.Config's
    settings. Yields (base URL, the uvicorn.Server)."""
    import uvicorn

    from f5_worker.http_server import listening_sockets

    sockets = listening_sockets(0, host="127.0.0.1")  # bound here: no other process can take the port meanwhile
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not server.started:  # its lifespan has run and it listens
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(SERVER_STOP_S)


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
