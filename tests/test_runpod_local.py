"""runpod_handler.py in RunPod's own local modes: test_input.json, and the local API server over HTTP."""

import base64
import contextlib
import io
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from conftest import REPO_ROOT, SERVER_START_S, HandlerServer, decode_b64_audio, free_port, running, wait_for
from f5_worker.limits import MAX_DRAWN_SEED

pytestmark = pytest.mark.slow


def test_test_input_json_runs_through_local_mode(worker_env, tmp_path):
    shutil.copy(REPO_ROOT / "test_input.json", tmp_path / "test_input.json")
    env = {**worker_env, "RESULT_DUMP_DIR": str(tmp_path / "results")}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "runpod_handler.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    logs = proc.stdout + proc.stderr
    assert "completed successfully" in logs
    result = json.loads((tmp_path / "results" / "local_test.json").read_text())
    wave, sr = decode_b64_audio(result["audio_base64"])
    assert sr == result["sample_rate"] and abs(len(wave) / sr - result["duration"]) < 0.002
    job = json.loads((REPO_ROOT / "test_input.json").read_text())["input"]
    # the tiny model speaks noise, so the quality gate may re-sample: the seed returned is the kept attempt's,
    # one of those tried (the job's, then each drawn from a generator seeded with it), the job's when none was
    draws = random.Random(job["seed"])
    tried = [job["seed"]] + [draws.randint(0, MAX_DRAWN_SEED) for _ in range(result["quality"]["retries"])]
    assert result["seed"] in tried, (result["seed"], tried)
    assert len(result["words"]) == len(job["text"].split())
    # runpod's local mode echoes the result, with every run of base64 shortened to a note of its length
    assert "Job result: {" in logs and "characters of base64>" in logs
    assert not re.search(r"[A-Za-z0-9+/]{120,}", logs), "base64 on the terminal"
    # what `make run` prints after it: where the files are, and why the tiny model's figures look bad
    shown = subprocess.run([sys.executable, str(REPO_ROOT / "scripts/dev/show_result.py"),
                            str(tmp_path / "results" / "local_test.json")], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for suffix in ("wav", "srt", "vtt"):
        assert f"{tmp_path / 'results' / 'local_test'}.{suffix}" in shown.stdout
        assert (tmp_path / "results" / f"local_test.{suffix}").stat().st_size > 0
    assert "speaks noise" in shown.stdout and "alignment score" in shown.stdout
    assert not re.search(r"[A-Za-z0-9+/]{120,}", shown.stdout)


def test_runpods_log_lines_lose_their_base64_and_nothing_else():
    from f5_worker.runpod_import import BASE64_RUN_CHARS, elide_base64

    payload = base64.b64encode(bytes(range(256)) * 40).decode()
    line = f"Job result: {{'audio_base64': '{payload}', 'error_hint': 'speed: must be <= 3', 'path': '/a/b.wav'}}"
    assert elide_base64(line) == (f"Job result: {{'audio_base64': '<{len(payload)} characters of base64>', "
                                  "'error_hint': 'speed: must be <= 3', 'path': '/a/b.wav'}")
    short = "x" * (BASE64_RUN_CHARS - 1)
    assert elide_base64(short) == short
    assert elide_base64("Job local_test failed with error: text: is empty") == \
        "Job local_test failed with error: text: is empty"


def test_local_mode_exits_nonzero_on_bad_job(worker_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--test_input", json.dumps({"input": {"text": ""}})],
        cwd=tmp_path, env=worker_env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 1
    assert "text: is empty" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_missing_weights_fail_boot_with_clear_message(worker_env, tmp_path):
    env = {**worker_env, "DEFAULT_MODEL": "F5TTS_v1_Base", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--test_input", json.dumps({"input": {"text": "x"}})],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "model_1250000.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr


@contextlib.contextmanager
def local_api_server(env: dict[str, str], workdir: Path):
    """runpod_handler.py --rp_serve_api (runpod's local API server) on a free port, from the moment its /docs
    answers until the block ends (``running``: SIGTERM, then killed); yields a HandlerServer."""
    port = free_port()
    args = [sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--rp_serve_api",
            "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)]
    with running(args, env, workdir) as (proc, log_path):
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/docs", 200, SERVER_START_S, proc, log_path)  # /docs redirects to runpod's page at /
        yield HandlerServer(proc, url, url, log_path)


def test_sigterm_stops_the_local_server_while_a_long_job_runs(worker_env, tmp_path):
    """kill, docker stop or a supervisor send SIGTERM; uvicorn alone would wait for the job's answer first."""
    with local_api_server({**worker_env, "ALIGN_PROCESSES": "0"}, tmp_path) as server:
        job = {"text": "This sentence runs on for a good while, and then some more. " * 8, "nfe_step": 128,
               "seed": 2, "max_retries": 0}
        answered = []

        def runsync():  # the request is open for as long as the job runs
            try:
                answered.append(requests.post(f"{server.url}/runsync", json={"input": job}, timeout=300).status_code)
            except requests.RequestException as exc:
                answered.append(exc)

        threading.Thread(target=runsync, daemon=True).start()
        deadline = time.time() + 120
        while not re.search(r"sampling 1 job\(s\).* 128 steps", server.log_path.read_text()):
            assert time.time() < deadline and server.proc.poll() is None, server.log_path.read_text()[-3000:]
            time.sleep(0.2)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        status = server.proc.wait(timeout=60)  # hang guard: the job alone runs for minutes here
        waited = time.monotonic() - sent
        log = server.log_path.read_text()
    assert status == -signal.SIGTERM, log[-3000:]
    assert waited < 30 and not re.search(r"job \S+ done in", log), (waited, log[-3000:])


@pytest.fixture(scope="module")
def api_server_process(worker_env, tmp_path_factory) -> HandlerServer:
    """The local API server; alignment in 2 spawned processes, as on a GPU worker (they re-import this entry file)."""
    with local_api_server({**worker_env, "ALIGN_PROCESSES": "2"}, tmp_path_factory.mktemp("api")) as server:
        yield server


@pytest.fixture(scope="module")
def api_server(api_server_process) -> str:
    return api_server_process.url


BATCH_OF = 3


@pytest.fixture(scope="module")
def batching_api_server(worker_env, tmp_path_factory) -> HandlerServer:
    """A server whose sampler waits for full batches of BATCH_OF jobs. A batch closes the moment its last job
    joins; the long window only turns a server that takes one job at a time into a failure instead of a hang."""
    env = {**worker_env, "MAX_BATCH_JOBS": str(BATCH_OF), "BATCH_WAIT_MS": "60000", "ALIGN_PROCESSES": "0"}
    with local_api_server(env, tmp_path_factory.mktemp("api-batching")) as server:
        yield server


@pytest.fixture(scope="module")
def streaming_api_server(worker_env, tmp_path_factory) -> str:
    """The local API server with STREAMING=1: runpod serves /stream for its generator handler."""
    with local_api_server({**worker_env, "STREAMING": "1", "ALIGN_PROCESSES": "0"}, tmp_path_factory.mktemp("api-stream")) as server:
        yield server.url


def test_a_streamed_job_over_run_then_stream(streaming_api_server):
    """/run, then /stream: runpod's local server gives every item once the job ends (a deployed endpoint gives
    them as they come; tests/test_streaming.py runs that loop)."""
    from test_streaming import STREAM_TEXT, check_stream

    job = {"text": STREAM_TEXT, "stream": True, "seed": 5, "nfe_step": 4, "max_retries": 1, "char_timings": True}
    job_id = requests.post(f"{streaming_api_server}/run", json={"input": job}, timeout=30).json()["id"]
    body = requests.post(f"{streaming_api_server}/stream/{job_id}", timeout=180).json()
    assert body["status"] == "COMPLETED", body
    items = [entry["output"] for entry in body["stream"]]
    check_stream(items, STREAM_TEXT)
    assert items[-1]["captions"]["srt"].startswith("1\n")
    # the tiny model speaks noise, which never matches the text: the gate re-sampled every piece before sending it
    assert items[-1]["quality"]["retries"] == items[-1]["pieces"]


def test_a_job_not_streamed_keeps_its_result_inside_a_list_on_a_streaming_server(api_server, streaming_api_server):
    """RunPod decides per worker that a generator handler's /runsync output is the list of its items: a job
    without stream gets its usual result as the only item. A worker without STREAMING refuses stream."""
    job = {"input": {"text": "Same shape.", "seed": 9, "nfe_step": 4, "max_retries": 0}}
    plain = requests.post(f"{api_server}/runsync", json=job, timeout=120).json()
    listed = requests.post(f"{streaming_api_server}/runsync", json=job, timeout=120).json()
    assert plain["status"] == listed["status"] == "COMPLETED"
    [out] = listed["output"]
    assert out.keys() == plain["output"].keys()
    assert out["audio_base64"] == plain["output"]["audio_base64"]
    timed = [{k: w[k] for k in ("word", "start", "end", "char_start", "char_end")} for w in out["words"]]
    assert timed == [{k: w[k] for k in timed[0]} for w in plain["output"]["words"]]  # aligned in or out of process
    refused = requests.post(f"{api_server}/runsync", json={"input": {"text": "x y", "stream": True}}, timeout=60).json()
    assert refused["status"] == "FAILED" and refused["error"].startswith("stream: this endpoint does not stream")


def test_an_openai_route_job_answers_the_same_list_on_a_plain_and_a_streaming_worker(api_server, streaming_api_server):
    """/runsync with RunPod's OpenAI-route input: a list of the one answer whether or not the worker streams, the
    speech's audio the same bytes for the same seed; a refusal the same error object on both."""
    speech = {"openai_route": "/v1/audio/speech", "openai_input": {
        "model": "tts-1", "voice": "alloy", "input": "Same shape.", "response_format": "wav", "seed": 9,
        "nfe_step": 4}}
    bad = {"openai_route": "/v1/audio/speech", "openai_input": {"model": "tts-1", "voice": "alloy", "input": ""}}
    answers = []
    for url in (api_server, streaming_api_server):
        body = requests.post(f"{url}/runsync", json={"input": speech}, timeout=180).json()
        assert body["status"] == "COMPLETED", body
        [out] = body["output"]
        wave, rate = decode_b64_audio(out["audio_base64"])
        assert rate == out["sample_rate"] == 24000 and abs(len(wave) / rate - out["duration"]) < 0.002
        refused = requests.post(f"{url}/runsync", json={"input": bad}, timeout=60).json()
        assert refused["status"] == "COMPLETED", refused
        answers.append((out, refused["output"]))
    assert answers[0] == answers[1]
    assert answers[0][1] == [{"error": {"message": "input: is empty", "type": "invalid_request_error",
                                        "param": "input", "code": None}}]


def test_openai_speech_events_stream_as_text_items_on_a_streaming_worker(api_server, streaming_api_server):
    """stream_format sse through runpod's local server: on a streaming worker each item is event text, which
    joined decodes to one file; without STREAMING the job completes with OpenAI's error naming the field."""
    speech = {"openai_route": "/v1/audio/speech", "openai_input": {
        "model": "tts-1", "voice": "alloy", "input": "Events, one by one.", "response_format": "wav", "seed": 9,
        "nfe_step": 4, "stream_format": "sse"}}
    body = requests.post(f"{streaming_api_server}/runsync", json={"input": speech}, timeout=180).json()
    assert body["status"] == "COMPLETED", body
    assert all(isinstance(item, str) and item.startswith("data: ") for item in body["output"]), body["output"][:1]
    events = [json.loads(block.removeprefix("data: ")) for block in "".join(body["output"]).split("\n\n") if block]
    assert events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    wave, rate = sf.read(io.BytesIO(audio))
    assert rate == 24000 and len(wave) > 0.5 * rate
    refused = requests.post(f"{api_server}/runsync", json={"input": speech}, timeout=60).json()
    assert refused["status"] == "COMPLETED", refused
    [answer] = refused["output"]
    assert answer["error"]["param"] == "stream_format" and "STREAMING=1" in answer["error"]["message"]


def test_runsync_over_http(api_server):
    resp = requests.post(f"{api_server}/runsync", json={"input": {"text": "Over HTTP.", "seed": 9, "nfe_step": 4,
                                                                  "output_format": "flac", "max_retries": 0}}, timeout=120)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "COMPLETED", body
    out = body["output"]
    wave, sr = decode_b64_audio(out["audio_base64"])
    assert sr == 24000 and out["seed"] == 9 and abs(len(wave) / sr - out["duration"]) < 0.002
    assert [w["word"] for w in out["words"]] == ["Over", "HTTP."]
    assert all(0 <= w["start"] <= w["end"] <= out["duration"] for w in out["words"])
    assert out["captions"]["srt"].startswith("1\n")


def test_a_two_voice_script_with_a_pause_over_http(api_server):
    """Two segments, one in the default voice and one in a voice sent as audio, with a pause and a number."""
    import soundfile as sf

    from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, wav_base64

    clip = wav_base64(*sf.read(DEFAULT_VOICE_WAV, dtype="float32"))
    segments = [{"text": "Welcome to the show."},
                {"ref_audio_base64": clip, "ref_text": DEFAULT_VOICE_TEXT, "text": "Thanks. [pause:1s] It is 3 pm."}]
    job = {"segments": segments, "seed": 4, "nfe_step": 4, "max_retries": 0, "caption_formats": ["vtt"]}
    body = requests.post(f"{api_server}/runsync", json={"input": job}, timeout=180).json()
    assert body["status"] == "COMPLETED", body
    out = body["output"]
    wave, rate = decode_b64_audio(out["audio_base64"])
    words = out["words"]
    assert [(w["word"], w["voice"], w["segment"]) for w in words] == [
        ("Welcome", "default", 0), ("to", "default", 0), ("the", "default", 0), ("show.", "default", 0),
        ("Thanks.", "ref", 1), ("It", "ref", 1), ("is", "ref", 1), ("3", "ref", 1), ("pm.", "ref", 1)]
    assert all(w["word"] == segments[w["segment"]]["text"][w["char_start"]:w["char_end"]] for w in words)
    between = wave[round(words[4]["end"] * rate) + 1:round(words[5]["start"] * rate) - 1]
    assert len(between) >= rate and np.count_nonzero(between == 0) >= rate  # the pause: 1 s of silence
    assert "three" in out["normalized_text"] and "3" not in out["normalized_text"]
    assert "<v default>Welcome" in out["captions"]["vtt"] and "<v ref>Thanks." in out["captions"]["vtt"]


def test_align_action_over_http(api_server):
    """align over /runsync: the f5-tts example speech against its transcript."""
    import base64

    from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV

    job = {"action": "align", "text": DEFAULT_VOICE_TEXT, "caption_formats": ["vtt"],
           "audio_base64": base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()}
    body = requests.post(f"{api_server}/runsync", json={"input": job}, timeout=120).json()
    assert body["status"] == "COMPLETED", body
    out = body["output"]
    assert [w["word"] for w in out["words"]] == DEFAULT_VOICE_TEXT.split()
    assert out["aligner"] == "sphinx" and not out["timings_estimated"], out
    assert out["captions"]["vtt"].startswith("WEBVTT")
    bad = requests.post(f"{api_server}/runsync", json={"input": {"action": "align", "text": "",
                                                                 "audio_base64": job["audio_base64"]}}, timeout=60)
    assert bad.json()["status"] == "FAILED" and "text: is empty" in bad.json()["error"]


def test_runsync_errors_then_next_job_works(api_server):
    for bad, message in (({"text": "hi", "speed": 50}, "speed: must be less than or equal to 3"),
                         ({"text": "hi", "bogus": True}, "bogus: unknown field"),
                         ({"text": "hi", "ref_audio_base64": "bm90IGF1ZGlv", "ref_text": "x"},
                          "ref_audio_base64: could not decode audio")):
        body = requests.post(f"{api_server}/runsync", json={"input": bad}, timeout=120).json()
        assert body["status"] == "FAILED" and message in body["error"], body
    body = requests.post(f"{api_server}/runsync", json={"input": {"action": "health"}}, timeout=60).json()
    assert body["status"] == "COMPLETED" and body["output"]["model"] == "tiny"
    assert body["output"]["align_processes"] == 2
    body = requests.post(f"{api_server}/runsync", json={"input": {"text": "Still up.", "nfe_step": 4}}, timeout=120).json()
    assert body["status"] == "COMPLETED" and body["output"]["duration"] > 0


def test_concurrent_runsync_jobs_are_in_the_worker_together(batching_api_server):
    """The async handler takes several jobs at once: three requests sent together meet in one sampling call,
    which they can only do if all three are inside the worker at the same time; each still gets its own audio."""
    from concurrent.futures import ThreadPoolExecutor

    url, log_path = batching_api_server.url, batching_api_server.log_path

    def post(i):
        job = {"input": {"text": f"Concurrent job number {i}.", "seed": i, "nfe_step": 4, "max_retries": 0}}
        return requests.post(f"{url}/runsync", json=job, timeout=180).json()

    with ThreadPoolExecutor(BATCH_OF) as pool:
        bodies = list(pool.map(post, range(BATCH_OF)))
    assert all(b["status"] == "COMPLETED" for b in bodies), bodies
    assert [b["output"]["seed"] for b in bodies] == list(range(BATCH_OF))
    assert len({b["output"]["audio_base64"] for b in bodies}) == BATCH_OF
    assert all([w["word"] for w in b["output"]["words"]] == f"Concurrent job number {i}.".split()
               for i, b in enumerate(bodies))
    # the sampler's own log line for each call it made
    assert re.findall(r"sampling (\d+) job\(s\)", log_path.read_text()) == [str(BATCH_OF)]


@pytest.mark.parametrize("name, value, message", [
    ("MAX_CONCURRENCY", "four", "MAX_CONCURRENCY must be a whole number (got 'four')"),
    ("ALIGNER", "bogus", "ALIGNER must be one of auto, ctc, sphinx, dtw, estimate (got 'bogus')"),
    ("DEVICE", "tpu", "DEVICE must be one of auto, cpu, cuda or cuda:N (got 'tpu')"),
])
def test_a_bad_setting_fails_boot_with_a_message_naming_it(worker_env, tmp_path, name, value, message):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "runpod_handler.py"), "--test_input", json.dumps({"input": {"text": "x"}})],
        cwd=tmp_path, env={**worker_env, name: value}, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 2
    assert f"cannot start: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr


FORGED = "2026-01-01 00:00:00,000 INFO f5_worker.worker: FORGED by a job"


def test_hostile_jobs_over_http_answer_by_field_log_cleanly_and_stay_within_memory(api_server_process):
    """Hostile jobs over the HTTP API: forged log lines, huge echoes, damaged metadata, an audio
    bomb (1); each answered ``<field>: <problem>``, the log has no line a job wrote, a good job follows."""
    import base64
    import io

    import numpy as np
    import soundfile as sf

    from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV

    server, url = api_server_process, api_server_process.url

    def run(job: dict, timeout: float = 120) -> dict:
        return requests.post(f"{url}/runsync", json={"input": job}, timeout=timeout).json()

    for job, field in (({"text": "hi", f"x\n{FORGED}": 1}, "x\\n2026"),
                       ({"voice": f"a\n{FORGED}", "text": "hi"}, "voice"),
                       ({"ref_audio_url": f"http://example.com/a.wav\n{FORGED}", "ref_text": "x", "text": "hi"},
                        "ref_audio_url"),
                       ({"action": "get_voice", "name": "a\x00b"}, "name"),
                       ({"action": "health", "voice\x00": 1}, "voice\\x00"),
                       ({"action": "x" * 1_000_000}, "action")):
        body = run(job)
        assert body["status"] == "FAILED" and body["error"].startswith(f"{field}"), (job.keys(), body)
        assert len(body["error"]) < 400, body["error"][:500]

    ref = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()
    assert run({"action": "upload_voice", "name": "anna", "audio_base64": ref, "ref_text": DEFAULT_VOICE_TEXT,
                "overwrite": True})["status"] == "COMPLETED"
    meta_path = server.log_path.parent / "data" / "voices" / "anna" / "voice.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, audio_key="../../../etc/passwd")))
    body = run({"text": "Hello.", "voice": "anna", "nfe_step": 4})
    assert body["error"].startswith("voice: voice 'anna' is damaged: its metadata (audio_key: "), body
    assert run({"action": "delete_voice", "name": "anna"})["status"] == "COMPLETED"

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 384000, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(60):
            f.write(np.zeros(384000, dtype=np.int16))
    status_path = f"/proc/{server.proc.pid}/status"
    baseline = int(re.search(r"VmRSS:\s+(\d+) kB", open(status_path).read()).group(1)) * 1024
    with open(f"/proc/{server.proc.pid}/clear_refs", "w") as clear:
        clear.write("5")  # the server's peak from here on
    body = run({"action": "align", "text": "Hello there.", "audio_base64": base64.b64encode(buf.getvalue()).decode()})
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", open(status_path).read()).group(1)) * 1024 - baseline
    assert body["status"] == "COMPLETED" and body["output"]["sample_rate"] == 384000, body
    assert peak < 64 << 20, peak  # it was 4 x 60 s x 384 kHz x 4 bytes and more: 0.37 GB

    body = run({"text": "Still up.", "nfe_step": 4})
    assert body["status"] == "COMPLETED" and body["output"]["duration"] > 0
    log = server.log_path.read_text(errors="replace")
    assert "FORGED" in log  # the jobs were logged...
    assert not [line for line in log.splitlines() if "FORGED" in line and line.startswith("2026-01-01")]
    assert "\x00" not in log  # ...escaped
