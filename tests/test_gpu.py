"""GPU checks: skipped without CUDA. Run on a GPU machine with `uv run pytest -m gpu`."""

import dataclasses

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def gpu_worker(tiny_settings):
    from f5_worker.tts.loading import load_models
    from f5_worker.worker import Worker

    settings = dataclasses.replace(tiny_settings, device="auto", dtype="auto", max_batch_jobs=4)  # batching on
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


def test_cuda_graph_replays_match_eager_blocks(gpu_worker):
    from f5_worker.tts.cuda_graphs import GraphedDiT, dit_tail

    assert isinstance(gpu_worker.models.cfm.transformer, GraphedDiT) and gpu_worker.models.cuda_graphs
    graphed = GraphedDiT(gpu_worker.models.cfm.transformer.dit, bucket_frames=64)  # own graphs and pool
    dim = graphed.dit.transformer_blocks[0].attn.to_q.in_features
    with torch.inference_mode():
        for frames, batch in ((70, 2), (100, 2), (90, 2), (40, 4)):
            h = torch.randn(batch, frames, dim, device="cuda", dtype=torch.float16)
            time = torch.rand(batch, device="cuda", dtype=torch.float16)
            got = graphed.run_graph("tail", dit_tail, [h], time, None)
            want = dit_tail(graphed.dit, h, time, None)
            assert got.shape == want.shape and torch.isfinite(got).all()
            torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)
    assert graphed.captures == 2  # 70, 100 and 90 frames share the 128-frame graph at batch 2


def test_graphed_sampling_steps_match_upstream_dit(gpu_worker):
    """Consecutive steps as CFM.sample makes them: the text cache filled on the first, every step from one graph."""
    from f5_worker.tts.cuda_graphs import GraphedDiT

    dit = gpu_worker.models.cfm.transformer.dit
    graphed = GraphedDiT(dit)
    mel = dit.proj_out.out_features
    for batch in (1, 3):
        x = torch.randn(batch, 150, mel, device="cuda", dtype=torch.float16)
        cond = torch.randn_like(x)
        text = torch.randint(0, 20, (batch, 40), device="cuda")
        mask = None if batch == 1 else torch.arange(150, device="cuda")[None] < torch.tensor([150, 120, 90],
                                                                                               device="cuda")[:, None]
        with torch.inference_mode():
            for step in range(3):
                time = torch.tensor(0.1 * step, device="cuda", dtype=torch.float16)
                got = graphed(x, cond, text, time, mask, cfg_infer=True, cache=True)
                want = dit(x, cond, text, time, mask, cfg_infer=True, cache=True)
                valid = torch.ones(batch, 150, dtype=torch.bool, device="cuda") if mask is None else mask
                valid = torch.cat((valid, valid))
                torch.testing.assert_close(got[valid].float(), want[valid].float(), rtol=2e-2, atol=2e-2)
            dit.clear_cache()
    assert graphed.captures == 2  # one whole-step graph per batch size, the first step's included


def test_by_default_a_seed_reproduces_under_load(tiny_settings):
    """MAX_BATCH_JOBS defaults to 1: concurrent jobs are sampled one by one, each from its own seed."""
    from concurrent.futures import ThreadPoolExecutor

    from f5_worker.tts.loading import load_models
    from f5_worker.worker import Worker

    settings = dataclasses.replace(tiny_settings, device="auto", dtype="auto")
    worker = Worker(settings, load_models(settings))
    assert worker.engine.max_batch_jobs == 1
    jobs = [{"text": f"Job number {i}.", "seed": 10 + i, "nfe_step": 8, "max_retries": 0} for i in range(3)]
    alone = [worker.handle(j)["audio_base64"] for j in jobs]
    with ThreadPoolExecutor(3) as pool:
        together = [o["audio_base64"] for o in pool.map(worker.handle, jobs)]
    assert together == alone


def test_ctc_aligner_on_cuda_matches_cpu(tmp_path, monkeypatch):
    """The image aligns English on the GPU: the same checkpoint gives the same emission and words as on CPU."""
    from f5_worker.alignment.ctc import CtcAligner
    from f5_worker.tts.tiny_models import ensure_random_ctc

    ensure_random_ctc(tmp_path / "torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cpu, gpu = CtcAligner(device="cpu"), CtcAligner(device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    audio = np.random.default_rng(4).normal(0, 0.1, 16000 * 3).astype(np.float32)
    on_cpu, on_gpu = cpu.emission(audio), gpu.emission(audio).cpu()
    assert on_cpu.shape == on_gpu.shape
    assert (on_cpu - on_gpu).abs().max() < 5e-2  # cuDNN may run the feature convolutions in TF32
    text = "Aligned on the graphics card."
    result = gpu.align(audio, 16000, text)
    assert result.backend == "ctc" and len(result.words) == 5
    assert all(0 <= w.start <= w.end <= 3.0 for w in result.words)


REAL_CUDA_FAULT = """
import json, sys
from pathlib import Path
import torch
from f5_worker.worker import Worker
from f5_worker.tts.loading import load_models
from f5_worker.config import Settings

settings = Settings(default_model="tiny", tiny_model_dir=Path(sys.argv[1]), network_volume_path=Path(sys.argv[2]),
                    hf_offline=True)
worker = Worker(settings, load_models(settings))
job = {"text": "Before and after the fault.", "seed": 1, "nfe_step": 8, "max_retries": 0}
before = worker.handle(dict(job))
try:  # a device-side assert: an out-of-range index on the GPU; CUDA's context is lost after it
    torch.zeros(2, device="cuda")[torch.tensor([5], device="cuda")]
    torch.cuda.synchronize()
except Exception as exc:
    print("fault:", type(exc).__name__, file=sys.stderr)
after = worker.handle(dict(job))
print(json.dumps({"before": "error" not in before, "after": after, "then": worker.handle({"action": "health"})}))
"""


def test_a_real_cuda_fault_makes_the_worker_ask_to_be_replaced(tiny_model_dir, tmp_path):
    """In its own process: after a device-side assert nothing in that process can use CUDA again."""
    import json
    import subprocess
    import sys

    from conftest import REPO_ROOT

    proc = subprocess.run([sys.executable, "-c", REAL_CUDA_FAULT, str(tiny_model_dir), str(tmp_path / "absent")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["before"]
    assert report["after"]["refresh_worker"] is True and "the GPU failed" in report["after"]["error"]
    assert report["then"] == report["after"]
