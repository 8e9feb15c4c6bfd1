"""TORCH_COMPILE: the DiT blocks compile once, during the start-up warm-up, and a failed compile falls back.

Compiled with torch's ``aot_eager`` backend here: the same tracing, guards and
recompilation as production's inductor, without needing a C compiler on CPU.
"""

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def compile_backend(monkeypatch):
    import f5_worker.models

    def use(backend):
        monkeypatch.setattr(f5_worker.models, "COMPILE_BACKEND", backend)
    return use


def compiled_worker(tiny_settings):
    from f5_worker.handler import Worker
    from f5_worker.models import load_models

    settings = dataclasses.replace(tiny_settings, device="cpu", torch_compile=True, max_batch_jobs=4,
                                   batch_wait_ms=300)
    return Worker(settings, load_models(settings))


def test_compiles_at_start_and_never_again(tiny_settings, compile_backend):
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
    outs = [worker.handle(j) for j in jobs]  # one at a time: batch 1, three lengths
    with ThreadPoolExecutor(3) as pool:
        outs += list(pool.map(worker.handle, jobs))  # together: one batch of 3
    assert all("error" not in o for o in outs), outs
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
