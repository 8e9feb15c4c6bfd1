"""runpod_handler.py as it runs on a RunPod endpoint: runpod-python's worker loop, over HTTP, to a stand-in platform.

RunPod's local modes (tests/test_runpod_local.py) run the handler through a
different path from a deployed worker: there, ``JobScaler`` takes jobs in batches
as ``concurrency_modifier`` allows, posts results back, sends heartbeats, and
stops jobs that are cancelled or time out. This runs exactly that, in a real
worker process, against tests/runpod_platform.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO_ROOT, decode_b64_audio, running, wait_for_log
from runpod_platform import RunPodJobApi

pytestmark = pytest.mark.slow

CONCURRENCY = 3


@pytest.fixture(scope="module")
def platform(worker_env, tmp_path_factory):
    """The stand-in platform, and a worker process serving it; yields (api, read_log, process). The worker is
    stopped with SIGTERM, which JobScaler's handler takes as: finish what is in progress, then exit 0."""
    cwd = tmp_path_factory.mktemp("worker")
    leave_stale_job_state(cwd)
    with RunPodJobApi() as api:
        env = {**worker_env, **api.worker_env(), "MAX_CONCURRENCY": str(CONCURRENCY)}
        with running([sys.executable, str(REPO_ROOT / "runpod_handler.py")], env, cwd, "worker.log") as (proc, log):
            yield api, log.read_text, proc
        assert proc.returncode == 0, log.read_text()[-3000:]


def leave_stale_job_state(directory) -> None:
    """What a worker killed with jobs in progress leaves in its cwd: runpod-python's own record of them."""
    record = ("from runpod.serverless.modules.worker_state import JobsProgress as P; p = P(); "
              f"[p.add({{'id': f'stale-{{i}}'}}) for i in range({CONCURRENCY})]")
    subprocess.run([sys.executable, "-c", record], cwd=directory, check=True, timeout=120)
    assert (directory / ".runpod_jobs.pkl").exists()


def test_jobs_are_taken_several_at_a_time_and_every_result_comes_back(platform):
    api, read_log, _ = platform
    jobs = {
        "speech": api.submit({"text": "Some call me nature.", "seed": 1, "nfe_step": 8, "max_retries": 0}),
        "bad": api.submit({"text": ""}),
        "align": api.submit({"action": "align", "text": "Hello there.", "audio_url": "ftp://example.com/a.wav"}),
        "health": api.submit({"action": "health"}),
    }
    results = {name: api.result(job_id, timeout=300) for name, job_id in jobs.items()}

    speech = results["speech"]["output"]
    wave, sr = decode_b64_audio(speech["audio_base64"])
    assert sr == speech["sample_rate"] and abs(len(wave) / sr - speech["duration"]) < 0.002
    assert [w["word"] for w in speech["words"]] == ["Some", "call", "me", "nature."]
    assert results["bad"] == {"error": "text: is empty"}
    assert results["align"]["error"].startswith("audio_url: ")
    assert results["health"]["output"]["status"] == "ok"

    assert CONCURRENCY in api.batch_sizes  # concurrency_modifier: it asked for up to 3 jobs at once
    assert max(api.batch_sizes) == CONCURRENCY
    assert api.wait(lambda: api.pings, 30, "a heartbeat")
    assert "Traceback" not in read_log()


def test_jobs_a_killed_worker_left_in_progress_do_not_block_this_one(platform):
    """The fixture's cwd holds runpod's record of CONCURRENCY jobs in progress from an earlier process.

    Read by runpod-python, it would fill every slot: the worker would never take a job
    (measured before f5_worker/runpod_import.py: none taken in 40 s) and its heartbeats
    would claim those jobs forever.
    """
    api, _, _ = platform
    job = api.submit({"action": "health"})
    assert api.result(job, timeout=120)["output"]["status"] == "ok"
    assert api.wait(lambda: len(api.pings) >= 2, 30, "heartbeats")
    assert not any(i.startswith("stale-") for ids in api.pings for i in ids)


def test_a_stopped_job_ends_mid_sampling_and_the_worker_takes_the_next(platform):
    api, read_log, _ = platform
    long_job = api.submit({"text": "This sentence runs on for a good while, and then some more. " * 3,
                           "nfe_step": 128, "seed": 2, "max_retries": 0})
    api.wait(lambda: long_job in api.taken, 60, "the long job to be taken")
    wait_for_log(read_log, rf"job {long_job}: synthesize[\s\S]*sampling 1 job\(s\).* 128 steps")
    api.wait(lambda: any(long_job in ids for ids in api.pings), 30, "a heartbeat reporting the job in progress")
    api.stop(long_job)  # what RunPod sends on /cancel, or when the execution timeout passes
    stopped = wait_for_log(read_log, rf"job {long_job}: stopped: .*at step (\d+) of 128", seconds=60)
    assert int(stopped.group(1)) < 128
    assert f"job {long_job}: stopped by RunPod" in read_log()

    next_job = api.submit({"text": "And the next one.", "seed": 3, "nfe_step": 8, "max_retries": 0})
    assert "audio_base64" in api.result(next_job)["output"]
    assert long_job not in api.results  # a stopped job posts nothing: RunPod reports it cancelled or timed out


def test_a_long_job_reports_its_progress_before_its_result(platform):
    """runpod's progress_update, posted as RunPod's /status shows it: each attempt's sampling and alignment."""
    api, _, _ = platform
    job = api.submit({"text": "This sentence runs on for a good while, and then some more. " * 4, "nfe_step": 4,
                      "seed": 4, "max_retries": 0})
    result = api.result(job)["output"]
    # every report has been posted before the result (a late one would show the job in progress again)
    sampling, aligning = sorted(api.progress[job], key=lambda p: p["stage"] != "sampling")
    chunks = result["chunks"]
    assert sampling == {"stage": "sampling", "attempt": 1, "of": 1, "chunks": chunks}
    assert aligning["stage"] == "aligning" and aligning["audio_seconds"] == pytest.approx(result["duration"], abs=1e-3)
    short = api.submit({"text": "A short one.", "nfe_step": 4, "max_retries": 0})
    assert "audio_base64" in api.result(short)["output"] and short not in api.progress  # too short to report


def test_openai_route_jobs_post_a_list_of_their_answer_and_refusals_complete(platform):
    """What RunPod hands a queue worker for ``/openai/v1/...``: the answer is the output, a list of one as a
    streaming worker's; a refusal is OpenAI's error object in that list, the job COMPLETED (no top-level
    ``error``, which runpod-python would take as the job's failure and post without the object)."""
    api, read_log, _ = platform
    speech = api.submit({"openai_route": "/v1/audio/speech", "openai_input": {
        "model": "tts-1", "voice": "alloy", "input": "Hello there.", "response_format": "mp3", "seed": 1,
        "nfe_step": 4}})
    models = api.submit({"openai_route": "/v1/models", "openai_input": {}})
    refused = api.submit({"openai_route": "/v1/audio/speech", "openai_input": {
        "model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "aac"}})
    [audio] = api.result(speech, timeout=300)["output"]
    assert (audio["format"], audio["content_type"], audio["voice"]) == ("mp3", "audio/mpeg", "default")
    wave, rate = decode_b64_audio(audio["audio_base64"])
    assert rate == audio["sample_rate"] == 24000 and len(wave) > 2400
    [listed] = api.result(models)["output"]
    assert listed["object"] == "list" and "tts-1" in [m["id"] for m in listed["data"]]
    body = api.result(refused)
    assert body == {"output": [{"error": {
        "message": "response_format: aac is not available (the worker's encoders cannot write it); use one of "
                   "mp3, opus, flac, wav, pcm",
        "type": "invalid_request_error", "param": "response_format", "code": "unsupported_value"}}]}, body
    assert "Traceback" not in read_log()


def test_on_sigterm_jobs_in_progress_finish_and_are_delivered(platform):
    """RunPod sends SIGTERM when it scales a worker down; work already paid for must still arrive. Runs last."""
    api, read_log, proc = platform
    job = api.submit({"text": "Finish me before you go, please.", "nfe_step": 32, "seed": 5, "max_retries": 0})
    wait_for_log(read_log, rf"job {job}: synthesize[\s\S]*sampling 1 job\(s\)")
    proc.terminate()
    assert "audio_base64" in api.result(job)["output"]
    assert proc.wait(timeout=60) == 0
