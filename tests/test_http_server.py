"""The HTTP server (SERVE=http, f5_worker/http_server.py) over real HTTP: the official openai client and
plain requests against ``python runpod_handler.py`` run as a subprocess on the tiny models (one per module),
and the app run in this process where a test must hold the model load (``/ping`` 204, then 200)."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import openai
import pytest
import requests
import soundfile as sf

from conftest import REPO_ROOT

FAST = {"nfe_step": 4, "seed": 1}  # our extension fields, through the SDK's extra_body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, status: int, seconds: float, proc: subprocess.Popen | None = None) -> list[int]:
    """Poll ``url`` until it answers ``status``; every status seen, in order (connection refused: 0)."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
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


@pytest.fixture(scope="module")
def server(worker_env, tmp_path_factory):
    """``SERVE=http python runpod_handler.py`` on two ports (PORT, PORT_HEALTH); yields (base URL, health URL)."""
    port, health_port = free_port(), free_port()
    env = dict(worker_env, SERVE="http", PORT=str(port), PORT_HEALTH=str(health_port), ALIGNER="estimate")
    workdir = tmp_path_factory.mktemp("http")  # its data folder (no volume) goes here
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "runpod_handler.py")], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        seen = wait_for(f"http://127.0.0.1:{health_port}/ping", 200, 180, proc)
        assert set(seen) <= {0, 204, 200}, seen  # refused until it listens, 204 while loading, then 200
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health_port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log_path.read_text(errors="replace")[-3000:])


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "pcm"])
def test_openai_speech_gives_audio_that_decodes(client, fmt):
    response = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.",
                                          response_format=fmt, extra_body=FAST)
    data = response.content
    if fmt == "pcm":  # OpenAI's pcm: raw 16-bit little-endian mono at 24 kHz
        wave, rate = sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16", samplerate=24000, channels=1,
                             endian="LITTLE")
    else:
        wave, rate = sf.read(io.BytesIO(data))
    assert rate == 24000 and wave.ndim == 1 and len(wave) > 2400 and np.isfinite(wave).all()
    assert response.response.headers["x-voice"] == "default"  # alloy: no stored voice of that name
    assert response.response.headers["content-type"].startswith(
        {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg", "pcm": "audio/L16"}[fmt])


def test_openai_model_names_and_registry_names(client, server):
    for model in ("tts-1-hd", "gpt-4o-mini-tts", "tiny"):
        response = client.audio.speech.create(model=model, voice="default", input="Hi.", response_format="wav",
                                              speed=1.2, extra_body=FAST)
        assert response.response.headers["x-model"] == "tiny"
        assert sf.read(io.BytesIO(response.content))[1] == 24000


@pytest.mark.parametrize("kwargs, param, words", [
    ({"response_format": "aac"}, "response_format", "aac is not available"),
    ({"instructions": "Speak cheerfully."}, "instructions", "not supported"),
    ({"speed": 4.0}, "speed", "speed"),
    ({"model": "no-such-model"}, "model", "no-such-model"),
    ({"voice": "nobody"}, "voice", "no voice named"),
    ({"input": ""}, "input", "input"),
    ({"extra_body": {"stream_format": "sse"}}, "stream_format", "sse"),
    ({"extra_body": {"colour": "blue"}}, "colour", "unknown field"),
])
def test_openai_bad_request_raises_with_our_message(client, kwargs, param, words):
    call = dict(model="tts-1", voice="alloy", input="Hello there.", response_format="wav") | kwargs
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**call)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == param and words in error["message"], error
    assert error["type"] == "invalid_request_error" and error["message"].startswith(param)


def test_openai_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "tiny" in ids and "tts-1" in ids


def test_body_refused_before_any_work(server):
    url = server[0] + "/v1/audio/speech"
    cases = [
        (requests.post(url, data="model=tts-1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415),
        (requests.post(url, data="{not json", headers={"Content-Type": "application/json"}), 400),
        (requests.post(url, json=["a list"]), 400),
        (requests.post(url, json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": [1]}), 400),
        (requests.post(url, json={"model": "tts-1", "voice": 7, "input": "Hi."}), 400),
        (requests.post(url, data=b" " * (31 * 1024 * 1024), headers={"Content-Type": "application/json"}), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_ping_health_and_native_synthesize(server):
    base, health_base = server
    assert requests.get(base + "/ping").status_code == 200  # on PORT as well as PORT_HEALTH
    assert requests.get(health_base + "/ping").status_code == 200
    health = requests.get(base + "/health").json()
    assert health["status"] == "ok"
    result = requests.post(base + "/v1/synthesize", json={"text": "Hello there.", **FAST}).json()
    assert result["format"] == "wav" and result["audio_base64"] and result["model"] == "tiny"
    wave, rate = sf.read(io.BytesIO(base64.b64decode(result["audio_base64"])))
    assert rate == 24000 and len(wave) > 2400
    bad = requests.post(base + "/v1/synthesize", json={"text": "Hello.", "nfe_step": 1000})
    assert bad.status_code == 400 and bad.json()["error"].startswith("nfe_step:")
    assert requests.post(base + "/v1/synthesize", data="nope",
                         headers={"Content-Type": "application/json"}).status_code == 400


def test_ping_answers_204_while_loading_then_200(worker):
    """The app exists before its Worker: /ping 204 (and the routes 503) until the load ends, then 200."""
    import uvicorn

    from f5_worker.http_server import create_app, listening_sockets

    release = threading.Event()

    def load():
        release.wait(60)
        return worker

    server = uvicorn.Server(uvicorn.Config(create_app(load), log_config=None))
    sockets = listening_sockets(free_port(), host="127.0.0.1")
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        wait_for(base + "/ping", 204, 30)
        busy = requests.post(base + "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."})
        assert busy.status_code == 503 and busy.headers["retry-after"]
        assert "loading" in busy.json()["error"]["message"]
        release.set()
        wait_for(base + "/ping", 200, 30)
    finally:
        release.set()
        server.should_exit = True
        thread.join(30)


def test_a_worker_that_cannot_load_stops_the_server_with_status_2(worker_env, tmp_path):
    """A model that cannot be found (offline, empty cache): the server stops, exit status 2 as the queue worker's."""
    port = free_port()
    env = dict(worker_env, SERVE="http", PORT=str(port), DEFAULT_MODEL="F5TTS_v1_Base", HF_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runpod_handler.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot start" in proc.stderr
