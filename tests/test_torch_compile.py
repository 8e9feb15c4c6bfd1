"""TORCH_COMPILE: the DiT blocks compile once, during the start-up warm-up, and a failed compile falls back.

Compiled with torch's ``aot_eager`` backend here: the same tracing, guards and
recompilation as production's inductor, without needing a C compiler on CPU.
"""

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def compile_backend(monkeypatch):
    import f5_worker.tts.compile

    def use(backend):
        monkeypatch.setattr(f5_worker.tts.compile, "COMPILE_BACKEND", backend)
    return use


def compiled_worker(tiny_settings):
    from f5_worker.tts.loading import load_models
    from f5_worker.worker import Worker

    settings = dataclasses.replace(tiny_settings, device="cpu", torch_compile=True, max_batch_jobs=3,
                                   batch_wait_ms=0)  # a job alone is sampled at once
    return Worker(settings, load_models(settings))


def sampled_batch_sizes(caplog) -> list[int]:
    """Jobs per sampling call, from the sampler's own log line."""
    return [int(re.match(r"sampling (\d+) job", r.getMessage()).group(1)) for r in caplog.records
            if r.name == "f5_worker.tts.sampler" and r.getMessage().startswith("sampling ")]


def test_compiles_at_start_and_never_again(tiny_settings, compile_backend, caplog):
    import torch._dynamo
    from torch._dynamo.utils import counters

    compile_backend("aot_eager")
    torch._dynamo.reset()
    counters.clear()
    worker = compiled_worker(tiny_settings)
    assert worker.models.compiled and worker.handle({"action": "health"})["torch_compile"] is True
    after_warm_up = sum(counters["stats"].values()), dict(counters["recompiles"])
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile, in the warm-up
    jobs = [{"text": t, "seed": i, "nfe_step": 4, "max_retries": 0}
            for i, t in enumerate(["Short one.", "A somewhat longer sentence than the first.",
                                   "Third job, another length again, longer still than those."])]
    with caplog.at_level("INFO", logger="f5_worker.tts.sampler"):
        outs = [worker.handle(j) for j in jobs]  # one at a time: batch 1, three lengths
        # together: one batch of 3. The sampler now waits for a full batch; the batch closes when the third
        # job joins, and the long window only keeps a broken batcher from hanging the test.
        worker.engine.max_wait_s = 120.0
        with ThreadPoolExecutor(3) as pool:
            outs += list(pool.map(worker.handle, jobs))
    assert all("error" not in o for o in outs), outs
    assert sampled_batch_sizes(caplog) == [1, 1, 1, 3]
    assert (sum(counters["stats"].values()), dict(counters["recompiles"])) == after_warm_up, counters


def test_failed_compilation_falls_back_to_eager(tiny_settings, compile_backend, caplog):
    import torch._dynamo

    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C compiler here")

    compile_backend(broken_backend)
    torch._dynamo.reset()
    worker = compiled_worker(tiny_settings)
    assert not worker.models.compiled and worker.handle({"action": "health"})["torch_compile"] is False
    assert "compilation failed, running without it" in caplog.text
    out = worker.handle({"text": "Still works.", "nfe_step": 4, "max_retries": 0})
    assert "error" not in out and out["duration"] > 0


def c_toolchain() -> bool:
    """What inductor needs on CPU: a C++ compiler and the Python headers (the GPU image installs both)."""
    import shutil
    import sysconfig
    from pathlib import Path

    return bool(shutil.which("g++") or shutil.which("c++")) and (
        Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()


COMPILE_IN_A_FRESH_PROCESS = """
import dataclasses, json, sys
from pathlib import Path
from torch._dynamo.utils import counters
from f5_worker.worker import Worker
from f5_worker.tts.loading import load_models
from f5_worker.config import Settings

settings = Settings(default_model="tiny", tiny_model_dir=Path(sys.argv[1]), hf_offline=True, device="cpu",
                    network_volume_path=Path(sys.argv[1]) / "no-volume", torch_compile=True)
worker = Worker(settings, load_models(settings))  # the warm-up compiles, with inductor as in production
out = worker.handle({"text": "Compiled.", "nfe_step": 4, "max_retries": 0})
print(json.dumps({"compiled": worker.models.compiled, "ok": "error" not in out, **counters["inductor"]}))
"""


@pytest.mark.skipif(not c_toolchain(), reason="inductor on CPU needs a C++ compiler and Python.h")
def test_a_later_boot_reuses_the_compiled_kernels(tiny_model_dir, tmp_path):
    """The boot path puts TORCHINDUCTOR_CACHE_DIR on the volume: a second worker process compiles from it."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "torchinductor"), HF_HUB_OFFLINE="1")
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", COMPILE_IN_A_FRESH_PROCESS, str(tiny_model_dir)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["compiled"] and first["ok"] and first.get("fxgraph_cache_miss", 0) >= 1
    assert second["compiled"] and second["ok"]
    assert second.get("fxgraph_cache_hit", 0) >= 1 and second.get("fxgraph_cache_miss", 0) == 0, second
