"""What a job does when the GPU fails under it: out of memory (recoverable) or a CUDA error (the process is done for).

The faults are raised where the GPU would raise them, from the DiT's forward pass
in the sampler thread, on a worker of its own (a CUDA error marks it broken).
tests/test_gpu.py causes a real device-side assert on a GPU machine.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import DEFAULT_VOICE_WAV, wav_base64
from f5_worker.errors import JobError

JOB = {"text": "The GPU is about to fail.", "seed": 1, "nfe_step": 4, "max_retries": 0}


@pytest.fixture
def own_worker(tiny_settings):
    from f5_worker.tts.loading import load_models
    from f5_worker.worker import Worker

    return Worker(tiny_settings, load_models(tiny_settings))


def fail_next_step(worker, exc: BaseException):
    def hook(module, args):
        handle.remove()
        raise exc

    handle = worker.models.cfm.transformer.register_forward_pre_hook(hook)


def test_out_of_gpu_memory_fails_the_job_and_the_worker_serves_on(own_worker):
    fail_next_step(own_worker, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    assert own_worker.handle(dict(JOB)) == {"error": "internal: out of GPU memory; try a shorter text"}
    assert own_worker.gpu_failure is None and own_worker.concurrency() == own_worker.settings.max_concurrency
    assert "audio_base64" in own_worker.handle(dict(JOB))


def test_a_cuda_error_asks_runpod_to_replace_the_worker_and_later_jobs_fail_fast(own_worker, caplog):
    fail_next_step(own_worker, torch.AcceleratorError("CUDA error: an illegal memory access was encountered"))
    with caplog.at_level("CRITICAL"):
        first = own_worker.handle(dict(JOB), job_id="j1")
    assert first["refresh_worker"] is True
    assert first["error"].startswith("internal: the GPU failed (AcceleratorError: CUDA error: an illegal memory")
    assert "Traceback" in caplog.text and "job j1: the GPU failed" in caplog.text
    # every later job would hit the same dead CUDA context: answered at once, the worker still to be replaced
    for job in (dict(JOB), {"action": "health"}):
        later = own_worker.handle(job)
        assert later == first
    assert own_worker.concurrency() == 0  # and it takes no more jobs from the endpoint's queue


def test_after_a_cuda_error_the_http_servers_ping_reports_the_worker_unhealthy(own_worker):
    """A load-balancing endpoint has no refresh_worker: RunPod replaces a worker whose /ping is not 200 or 204."""
    from fastapi.testclient import TestClient

    from f5_worker.http_server import create_app

    with TestClient(create_app(worker=own_worker)) as client:
        assert client.get("/ping").status_code == 200
        fail_next_step(own_worker, torch.AcceleratorError("CUDA error: an illegal memory access was encountered"))
        failed = client.post("/v1/synthesize", json=dict(JOB))
        assert failed.status_code == 500 and "the GPU failed" in failed.json()["error"]
        ping = client.get("/ping")
        assert ping.status_code == 503 and ping.json()["status"] == "failed"
        assert "illegal memory access" in ping.json()["error"]


def test_runpod_turns_refresh_worker_into_stop_pod(own_worker):
    """runpod-python's own run_job builds the result body a deployed worker posts back."""
    from runpod.serverless.modules.rp_job import run_job

    fail_next_step(own_worker, RuntimeError("CUDA error: device-side assert triggered"))

    async def handler(job):
        return await own_worker.handle_async(job["input"], job_id=job["id"])

    body = asyncio.run(run_job(handler, {"id": "j2", "input": dict(JOB)}))
    assert body["stopPod"] is True and body["error"].startswith("internal: the GPU failed (RuntimeError: CUDA error")
    assert "output" not in body


def test_a_cuda_error_in_the_aligner_is_not_hidden_behind_estimated_timings(own_worker, monkeypatch):
    """The ctc aligner runs on the GPU; a worker answering align jobs with estimates would never be replaced."""
    def lost(*args, **kwargs):
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(own_worker.aligner, "align", lost)
    result = own_worker.handle({"action": "align", "text": "Some call me nature.",
                                "audio_base64": wav_base64(*sf.read(DEFAULT_VOICE_WAV, dtype="float32"))})
    assert result["refresh_worker"] is True and "the GPU failed" in result["error"]


def test_out_of_gpu_memory_in_the_aligner_keeps_the_paid_audio_with_estimated_timings(own_worker, monkeypatch):
    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(own_worker.aligner, "align", too_big)
    result = own_worker.handle({**JOB, "max_retries": 0})
    assert "audio_base64" in result and result["timings_estimated"] is True
    assert own_worker.gpu_failure is None


@pytest.mark.parametrize("fault, outcome", [
    (torch.AcceleratorError("CUDA error: unspecified launch failure"), torch.AcceleratorError),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), JobError),
])
def test_whisper_lets_cuda_errors_through_and_reports_out_of_memory_as_ref_text(fault, outcome, monkeypatch):
    from f5_worker.transcribe import WhisperTranscriber

    transcriber = WhisperTranscriber(model="whisper-on-a-failing-gpu")

    def pipeline(*args, **kwargs):
        raise fault

    monkeypatch.setattr(transcriber, "_load", lambda: pipeline)
    with pytest.raises(outcome) as caught:
        transcriber(np.zeros(24000, dtype=np.float32), 24000)
    if outcome is JobError:
        assert str(caught.value).startswith("ref_text: speech recognition failed (OutOfMemoryError")
