"""GPU checks: skipped without CUDA. Run on a GPU machine with `uv run pytest -m gpu`."""

import dataclasses

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def gpu_worker(tiny_settings):
    from f5_worker.handler import Worker
    from f5_worker.models import load_models

    settings = dataclasses.replace(tiny_settings, device="auto", dtype="auto")
    return Worker(settings, load_models(settings))


def test_models_load_on_cuda_in_half_precision(gpu_worker):
    m = gpu_worker.models
    assert m.device == "cuda" and m.dtype == torch.float16
    assert next(m.cfm.parameters()).is_cuda and next(m.vocoder.parameters()).is_cuda
    health = gpu_worker.handle({"action": "health"})
    assert health["gpu"] and health["dtype"] == "float16"


def test_synthesis_on_cuda_is_finite_and_reproducible(gpu_worker):
    job = {"text": "Hello from the GPU.", "seed": 3, "nfe_step": 8, "max_retries": 0}
    a, b = gpu_worker.handle(job), gpu_worker.handle(job)
    assert "error" not in a, a
    assert a["audio_base64"] == b["audio_base64"]


def test_concurrent_jobs_batch_on_cuda(gpu_worker):
    from concurrent.futures import ThreadPoolExecutor

    assert gpu_worker.engine.max_batch_jobs > 1
    jobs = [{"text": f"Batched job {i}.", "seed": i, "nfe_step": 8, "max_retries": 0} for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(gpu_worker.handle, jobs))
    assert all("error" not in o for o in outs), outs
    assert all(np.isfinite(o["duration"]) and o["duration"] > 0 for o in outs)
