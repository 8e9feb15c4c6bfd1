"""The HTTP server (SERVE=http, f5_worker/http_server.py) over real HTTP: the official openai client and
plain requests against ``python runpod_handler.py`` run as a subprocess on the tiny models (one per module,
and one more a test stops with SIGTERM), and the app served by uvicorn in this process where a test must hold
the model load (``/ping`` 204, then 200) or the sampler (at a given step, test_stopping.StepWatch), to see
what arrives before a job ends, what is refused while jobs are in flight, and where a job stops."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import requests
import soundfile as sf
from test_stopping import StepWatch

from conftest import REPO_ROOT, free_port, http_server_process, serving, wait_for, wait_for_log

FAST = {"nfe_step": 4, "seed": 1}  # our extension fields, through the SDK's extra_body
NFE = 8  # the sampling steps of the jobs a test holds: the first piece takes calls 1-8, the second from 9
HELD = {"nfe_step": NFE, "seed": 2}  # ALIGNER=estimate: the quality gate re-samples only silence, never made here
HANG_S = 120  # hang guards only: every wait below ends as soon as what it waits for happens
LONG_TEXT = ("Hello there, this stream comes in pieces. The first one is short, so it is ready soon, "
             "and the rest follows while the first one plays. Then it ends.")


@pytest.fixture(scope="module")
def server(worker_env, tmp_path_factory):
    """The server as a subprocess on two ports (PORT, PORT_HEALTH); yields (base URL, health URL)."""
    with http_server_process(worker_env, tmp_path_factory.mktemp("http"), health_port=True) as served:
        yield served.url, served.health_url


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
        assert "x-voice" not in response.response.headers  # said only for OpenAI's voice names
        assert sf.read(io.BytesIO(response.content))[1] == 24000


def test_openai_defaults_a_voice_names_case_empty_instructions_and_every_extension(client):
    """What the SDK sends when a caller leaves things out: no response_format (OpenAI's default, mp3), an empty
    instructions; an OpenAI voice name in any case; and every extension docs/http.md lists, accepted."""
    extensions = {**FAST, "cfg_strength": 2.0, "sway_sampling_coef": -1.0, "language": "en", "normalize": True,
                  "remove_silence": False, "cross_fade_duration": 0.15, "target_rms": 0.1}
    response = client.audio.speech.create(model="tts-1", voice="Alloy", input="Hello there.", instructions="",
                                          extra_body=extensions)
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert response.response.headers["x-voice"] == "default"
    wave, rate = sf.read(io.BytesIO(response.content))
    assert rate == 24000 and len(wave) > 2400


@pytest.mark.parametrize("kwargs, param, words", [
    ({"response_format": "aac"}, "response_format", "aac is not available"),
    ({"instructions": "Speak cheerfully."}, "instructions", "not supported"),
    ({"speed": 4.0}, "speed", "speed"),
    ({"model": "no-such-model"}, "model", "no-such-model"),
    ({"voice": "nobody"}, "voice", "no voice named"),
    ({"input": ""}, "input", "input"),
    ({"extra_body": {"stream_format": "ogg"}}, "stream_format", "must be one of audio, sse"),
    ({"extra_body": {"timestamp_granularities": ["segment"]}}, "timestamp_granularities", "'segment' is not one"),
    ({"stream_format": "audio", "extra_body": {"timestamp_granularities": ["word"]}}, "timestamp_granularities",
     "not available with stream_format 'audio'"),
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
    models = {m.id: m for m in client.models.list()}
    assert models["tiny"].owned_by == "f5-worker" and getattr(models["tiny"], "alias_of", None) is None
    for name in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"):  # OpenAI's names: the default model
        assert models[name].alias_of == "tiny"


def test_a_path_or_method_not_served_is_refused_in_the_routes_own_form(client, server):
    with pytest.raises(openai.NotFoundError) as caught:  # OpenAI has GET /v1/models/{model}; we do not
        client.models.retrieve("tiny")
    assert caught.value.body["message"] == "GET /v1/models/tiny: not found" and caught.value.code == "unknown_url"
    with pytest.raises(openai.APIStatusError) as caught:
        client.get("/audio/speech", cast_to=object)
    assert caught.value.status_code == 405 and caught.value.response.headers["allow"] == "POST"
    assert caught.value.body["message"] == "GET /v1/audio/speech: method not allowed; this route takes POST"
    native = requests.get(server[0] + "/v1/synthesize", timeout=HANG_S)
    assert native.status_code == 405 and native.json() == {
        "error": "GET /v1/synthesize: method not allowed; this route takes POST"}
    assert requests.get(server[0] + "/nowhere", timeout=HANG_S).json() == {"error": "GET /nowhere: not found"}


def test_head_is_answered_wherever_get_is(server):
    """HTTP's servers must take HEAD wherever they take GET (RFC 9110, 9.1): a monitor that checks /ping with
    HEAD (curl -I) was answered 405 and took the worker for down."""
    for path in ("/ping", "/health", "/v1/models", "/", "/page/app.js"):
        got, head = requests.get(server[0] + path, timeout=HANG_S), requests.head(server[0] + path, timeout=HANG_S)
        assert head.status_code == got.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    posted = requests.head(server[0] + "/v1/synthesize", timeout=HANG_S)
    assert posted.status_code == 405 and posted.headers["allow"] == "POST"


def test_body_refused_before_any_work(server):
    url = server[0] + "/v1/audio/speech"
    cases = [
        (requests.post(url, data="model=tts-1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415),
        (requests.post(url, data="{not json", headers={"Content-Type": "application/json"}), 400),
        (requests.post(url, data="[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"}), 400),
        (requests.post(url, json=["a list"]), 400),
        (requests.post(url, json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": [1]}), 400),
        (requests.post(url, json={"model": "tts-1", "voice": 7, "input": "Hi."}), 400),
        (requests.post(url, data=b" " * (31 * 1024 * 1024), headers={"Content-Type": "application/json"}), 413),
        # no Content-Length (chunked): counted as it is read
        (requests.post(url, data=chunked(30, 1 << 20), headers={"Content-Type": "application/json"}), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert cases[3][0].json()["error"]["message"] == "the body must be a JSON object"
    native = requests.post(server[0] + "/v1/synthesize", json=["a list"], timeout=HANG_S)
    assert native.status_code == 400 and native.json() == {"error": "the body must be a JSON object"}


def chunked(blocks: int, size: int) -> Iterator[bytes]:
    """A body sent without Content-Length: ``blocks`` blocks of ``size`` spaces, then one more byte."""
    yield from (b" " * size for _ in range(blocks))
    yield b" "


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
    details = requests.post(base + "/v1/synthesize", data=json.dumps({"action": "health"}),
                            headers={"Content-Type": "Application/JSON; charset=UTF-8"})  # media types ignore case
    assert details.status_code == 200 and details.json()["status"] == "ok"


def test_port_health_equal_to_port_is_one_port():
    """PORT_HEALTH set to PORT (both health checks and requests on one port) binds the port once."""
    from f5_worker.http_server import listening_sockets

    port = free_port()
    sockets = listening_sockets(port, port, host="127.0.0.1")
    try:
        for sock in sockets:
            sock.listen()
        assert [sock.getsockname()[1] for sock in sockets] == [port]
    finally:
        for sock in sockets:
            sock.close()


def test_ping_answers_204_while_loading_then_200(worker):
    """The app exists before its Worker: /ping 204 (and the routes 503) until the load ends, then 200."""
    from f5_worker.http_server import create_app

    release = threading.Event()

    def load():
        release.wait(60)
        return worker

    with serving(create_app(load)) as (base, _):
        try:
            wait_for(base + "/ping", 204, 30)
            busy = requests.post(base + "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."})
            assert busy.status_code == 503 and busy.headers["retry-after"]
            assert "loading" in busy.json()["error"]["message"]
            assert (busy.json()["error"]["type"], busy.json()["error"]["code"]) == ("server_error", "not_ready")
            release.set()
            wait_for(base + "/ping", 200, 30)
        finally:
            release.set()


def test_a_worker_that_cannot_load_stops_the_server_with_status_2(worker_env, tmp_path):
    """A model that cannot be found (offline, empty cache): the server stops, exit status 2 as the queue worker's."""
    port = free_port()
    env = dict(worker_env, SERVE="http", PORT=str(port), DEFAULT_MODEL="F5TTS_v1_Base", HF_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "runpod_handler.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot start" in proc.stderr


# -- streamed answers, over the subprocess server -----------------------------------------------------------


def sse_events(response: requests.Response) -> list[dict]:
    """A text/event-stream answer's events: each ``data: <JSON>`` line."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    return [json.loads(line[len(b"data: "):]) for line in response.iter_lines() if line.startswith(b"data: ")]


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16", samplerate=24000, channels=1,
                       endian="LITTLE")
    return sf.read(io.BytesIO(data))


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "pcm"])
def test_streamed_speech_joins_into_audio_that_decodes(client, fmt):
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=LONG_TEXT, response_format=fmt, stream_format="audio",
            extra_body=FAST) as response:
        assert response.headers["transfer-encoding"] == "chunked" and response.headers["x-voice"] == "default"
        assert (response.headers["cache-control"], response.headers["x-accel-buffering"]) == ("no-cache", "no")
        data = b"".join(response.iter_bytes())
    wave, rate = decode(data, fmt)
    assert rate == 24000 and wave.ndim == 1 and len(wave) > 5 * rate and np.isfinite(wave).all()


def test_openai_events_carry_the_audio_its_word_timings_and_the_usage(server):
    response = requests.post(server[0] + "/v1/audio/speech", stream=True, timeout=120, json={
        "model": "tts-1", "voice": "alloy", "input": LONG_TEXT, "response_format": "wav", "stream_format": "sse",
        "timestamp_granularities": ["word", "character"], **FAST})
    assert response.status_code == 200
    events = sse_events(response)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and kinds.count("speech.audio.done") == 1
    assert set(kinds) == {"speech.audio.delta", "speech.audio.timestamps", "speech.audio.done"}
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert all(set(e) == {"type", "audio"} for e in deltas)  # openai-python's SpeechAudioDeltaEvent
    usage = events[-1]["usage"]  # SpeechAudioDoneEvent: usage of three whole numbers
    assert set(events[-1]) == {"type", "usage"} and set(usage) == {"input_tokens", "output_tokens", "total_tokens"}
    assert usage["input_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]

    wave, rate = decode(b"".join(base64.b64decode(e["audio"]) for e in deltas), "wav")
    timed = [e for e in events if e["type"] == "speech.audio.timestamps"]
    assert len(timed) >= 2  # a short first piece, then the rest
    for before, after in zip(timed, timed[1:]):
        assert after["offset"] == pytest.approx(before["offset"] + before["duration"], abs=1e-3)
    assert len(wave) / rate == pytest.approx(timed[-1]["offset"] + timed[-1]["duration"], abs=1e-3)
    words = [w for e in timed for w in e["words"]]
    assert [w["word"] for w in words] == LONG_TEXT.split()
    assert all(e["offset"] <= w["start"] <= w["end"] <= e["offset"] + e["duration"] + 1e-3
               for e in timed for w in e["words"])
    assert "".join(c["char"] for e in timed for c in e["chars"]) == LONG_TEXT.replace(" ", "")


def test_word_timings_make_the_answer_json_with_the_audio(client):
    response = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there, friend.",
                                          response_format="mp3",
                                          extra_body={"timestamp_granularities": ["word"], **FAST})
    assert response.response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["format"] == "mp3" and "chars" not in answer
    assert [w["word"] for w in answer["words"]] == ["Hello", "there,", "friend."]
    wave, rate = sf.read(io.BytesIO(base64.b64decode(answer["audio_base64"])))
    assert len(wave) / rate == pytest.approx(answer["duration"], abs=0.05)


def test_native_stream_answers_the_items_as_events_whatever_streaming_says(server):
    """The subprocess runs with STREAMING unset: over HTTP ``stream: true`` streams all the same."""
    response = requests.post(server[0] + "/v1/synthesize", stream=True, timeout=120,
                             json={"text": LONG_TEXT, "stream": True, **FAST})
    assert response.status_code == 200 and response.headers["x-job-id"]
    assert (response.headers["cache-control"], response.headers["x-accel-buffering"]) == ("no-cache", "no")
    items = sse_events(response)
    pieces, done = items[:-1], items[-1]
    assert [item["seq"] for item in items] == list(range(len(items))) and len(pieces) >= 2
    assert done["done"] is True and done["pieces"] == len(pieces) and "captions" in done
    offset = 0.0
    for item in pieces:  # each a piece as RunPod's /stream gives it
        assert item["offset"] == pytest.approx(offset, abs=1e-3) and item["words"]
        wave, rate = sf.read(io.BytesIO(base64.b64decode(item["audio_base64"])))
        assert len(wave) / rate == pytest.approx(item["duration"], abs=1e-3)
        offset += item["duration"]
    assert done["duration"] == pytest.approx(offset, abs=1e-3)

    refused = requests.post(server[0] + "/v1/synthesize", json={"text": "Hi.", "stream": True, "speed": 50})
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"
    assert refused.json() == {"error": "speed: must be less than or equal to 3"}


def test_on_sigterm_mid_stream_the_server_takes_no_more_requests_finishes_the_stream_and_exits_0(
        worker_env, tmp_path):
    with http_server_process(worker_env, tmp_path, health_port=True) as served:
        proc, health_base = served.proc, served.health_url
        response = requests.post(served.url + "/v1/audio/speech", stream=True, timeout=HANG_S, json={
            "model": "tts-1", "voice": "alloy", "input": LONG_TEXT, "response_format": "wav",
            "stream_format": "audio", **HELD})
        chunks = response.iter_content(None)
        data = [next(chunks)]  # the stream has started
        proc.send_signal(signal.SIGTERM)
        seen = wait_for(health_base + "/ping", 0, HANG_S)  # then connections are refused
        assert seen[-1] == 0
        data += list(chunks)  # the stream in progress goes on to its end (within the grace period)
        assert proc.wait(HANG_S) == 0
    wave, rate = sf.read(io.BytesIO(b"".join(data)))
    assert len(wave) > 5 * rate


# -- in this process, with the sampler held at a given step ------------------------------------------------


@contextlib.contextmanager
def serving_own_worker(worker, grace_s: float = 30, **settings):
    """The app over a Worker of its own (the models every test shares, ``settings`` changed), served by uvicorn in a
    thread, ``grace_s`` its SHUTDOWN_GRACE_S; yields (base URL, that Worker, the uvicorn server)."""
    from f5_worker.http_server import create_app
    from f5_worker.worker import Worker

    own = Worker(dataclasses.replace(worker.settings, aligner="estimate", **settings), worker.models)
    with serving(create_app(worker=own), timeout_graceful_shutdown=grace_s) as (base, server):
        yield base, own, server


@pytest.fixture(scope="module")
def local(worker):
    with serving_own_worker(worker, max_concurrency=2) as served:
        yield served


@contextlib.contextmanager
def held_at(own, step: int, action=None):
    """The sampler held at its ``step``-th step from now until released (or runs ``action`` there instead);
    yields (the event set once it is held, the release)."""
    reached, release = threading.Event(), threading.Event()

    def hold():
        reached.set()
        if action is not None:
            action()
        else:
            release.wait(HANG_S)

    watch = StepWatch(own, step, hold)
    try:
        yield reached, release
    finally:
        release.set()
        watch.remove()


def test_streamed_audio_starts_before_the_job_has_made_its_last_piece(local):
    """The sampler is held at the first step of the second piece until the client has the first chunk: were
    the audio sent only once the job ended, the first chunk could not come while the job is held."""
    base, own, _ = local
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=HANG_S)
    first_chunk = threading.Event()
    came = []
    with held_at(own, NFE + 1, lambda: came.append(first_chunk.wait(HANG_S))):
        with client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=LONG_TEXT, response_format="mp3", stream_format="audio",
                extra_body=HELD) as response:
            chunks = response.iter_bytes()
            data = [next(chunks)]
            first_chunk.set()
            data += list(chunks)
    assert came == [True]  # the second piece was held until the first chunk had arrived
    wave, rate = sf.read(io.BytesIO(b"".join(data)))
    assert rate == 24000 and len(wave) > 5 * rate


def test_past_max_concurrency_jobs_are_refused_at_once_with_429(local):
    base, own, _ = local
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=HANG_S)
    queued = []
    answers = []

    def job():
        answers.append(requests.post(base + "/v1/synthesize", json={"text": "Held in flight.", **HELD},
                                     timeout=HANG_S))

    with held_at(own, 2) as (reached, release):
        own.engine.on_queued = queued.append
        threads = [threading.Thread(target=job) for _ in range(2)]
        try:
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + HANG_S
            while len(queued) < 2 and time.monotonic() < deadline:  # both jobs in flight (MAX_CONCURRENCY=2)
                time.sleep(0.02)
            assert len(queued) == 2 and reached.wait(HANG_S) and not answers

            with pytest.raises(openai.RateLimitError) as caught:
                client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_body=HELD)
            assert caught.value.status_code == 429 and caught.value.response.headers["retry-after"] == "1"
            assert caught.value.body["type"] == "requests" and caught.value.body["code"] == "rate_limit_exceeded"
            assert "MAX_CONCURRENCY" in caught.value.body["message"]
            native = requests.post(base + "/v1/synthesize", json={"text": "Hi."}, timeout=HANG_S)
            assert native.status_code == 429 and native.headers["retry-after"] == "1"
            assert set(native.json()) == {"error"} and "at most 2 jobs at once" in native.json()["error"]
            for path in ("/ping", "/health", "/v1/models"):  # not jobs: never refused
                assert requests.get(base + path, timeout=HANG_S).status_code == 200
            for action in ("list_voices", "list_models", "health"):  # details only: never refused either
                details = requests.post(base + "/v1/synthesize", json={"action": action}, timeout=HANG_S)
                assert details.status_code == 200 and "error" not in details.json(), (action, details.text)
            aligning = requests.post(base + "/v1/synthesize", json={"action": "align", "text": "Hi."},
                                     timeout=HANG_S)
            assert aligning.status_code == 429  # the aligner's work counts as a job's
        finally:
            own.engine.on_queued = None
            release.set()
            for thread in threads:
                thread.join(HANG_S)
    assert [a.status_code for a in answers] == [200, 200]


def test_with_every_job_slot_in_flight_health_and_the_voices_still_answer(worker):
    """Jobs ran in the event loop's default pool of threads, min(32, cores + 4) of them, shared with /health
    and the actions that only read details: with as many jobs in flight (MAX_CONCURRENCY 32, or 8 on a
    4-core machine), /health and list_voices waited for a job to end, and hung as long as it ran."""
    jobs = 32  # the most threads that default pool has on any machine
    with serving_own_worker(worker, max_concurrency=jobs) as (base, own, _), held_at(own, 2) as (reached, release):
        queued, answers = [], []
        own.engine.on_queued = queued.append
        threads = [threading.Thread(target=lambda: answers.append(requests.post(
            base + "/v1/synthesize", json={"text": "Held in flight.", **HELD}, timeout=HANG_S)))
            for _ in range(jobs)]
        try:
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + HANG_S
            while len(queued) < jobs and time.monotonic() < deadline:  # every job in flight, waiting for the sampler
                time.sleep(0.02)
            assert len(queued) == jobs and reached.wait(HANG_S) and not answers
            # hang guards shorter than the hold: answered while every job is still held, or not at all
            assert requests.get(base + "/health", timeout=HANG_S / 2).json()["status"] == "ok"
            listed = requests.post(base + "/v1/synthesize", json={"action": "list_voices"}, timeout=HANG_S / 2)
            assert listed.status_code == 200 and "voices" in listed.json(), listed.text
            assert not answers  # the jobs were still held meanwhile
        finally:
            own.engine.on_queued = None
            release.set()
            for thread in threads:
                thread.join(HANG_S)
    assert [a.status_code for a in answers] == [200] * jobs


def test_a_refused_job_gives_its_slot_back(local):
    """More refusals than MAX_CONCURRENCY (2), one after the other: each one's own 400, never a 429."""
    base, _, _ = local
    for _ in range(3):
        native = requests.post(base + "/v1/synthesize", json={"text": "Hi.", "voice": "nobody"}, timeout=HANG_S)
        assert native.status_code == 400 and native.json()["error"].startswith("voice: "), native.text
        speech = requests.post(base + "/v1/audio/speech", json={"model": "tts-1", "voice": "nobody", "input": "Hi."},
                               timeout=HANG_S)
        assert speech.status_code == 400 and speech.json()["error"]["param"] == "voice", speech.text


def test_an_error_after_the_stream_has_started_is_its_last_event(local):
    base, own, _ = local

    def fail():
        raise RuntimeError("the sampler broke")

    with held_at(own, NFE + 1, fail):
        response = requests.post(base + "/v1/synthesize", stream=True, timeout=HANG_S,
                                 json={"text": LONG_TEXT, "stream": True, **HELD})
        assert response.status_code == 200
        items = sse_events(response)
    assert items[0]["seq"] == 0 and items[0]["audio_base64"]
    assert items[-1] == {"error": "internal: RuntimeError: the sampler broke"}


def test_a_speech_its_models_rate_cannot_be_written_in_is_refused_in_openais_form(worker, tiny_44k_entry, caplog):
    """Opus takes 8, 12, 16, 24 and 48 kHz only: from a model speaking at 44.1 kHz, the streamed speech was a
    plain-text 500 (Internal Server Error) with an ASGI traceback in the log, the whole one a 500 after its
    audio was made."""
    with serving_own_worker(worker, models_json=json.dumps([tiny_44k_entry])) as (base, _, _), \
            caplog.at_level("INFO"):
        for stream_format in ("audio", "sse", None):
            body = {"model": "tiny-44k", "voice": "alloy", "input": "Hello there.", "response_format": "opus",
                    "stream_format": stream_format, **FAST}
            answer = requests.post(base + "/v1/audio/speech", json={k: v for k, v in body.items() if v},
                                   timeout=HANG_S)
            assert answer.status_code == 400, (stream_format, answer.text)
            error = answer.json()["error"]
            assert error["param"] == "response_format" and error["type"] == "invalid_request_error"
            assert error["message"].startswith("response_format: opus cannot be written at 44100 Hz"), error
        flac = requests.post(base + "/v1/audio/speech", timeout=HANG_S, json={
            "model": "tiny-44k", "voice": "alloy", "input": "Hello there.", "response_format": "flac",
            "stream_format": "audio", **FAST})
        assert flac.status_code == 200 and sf.info(io.BytesIO(flac.content)).samplerate == 44100
    assert "Traceback" not in caplog.text and "Exception in ASGI application" not in caplog.text


def test_a_bucket_that_is_down_is_the_servers_503_not_the_requests_400(worker, bucket_env, seaweed):
    """A storage error is no fault of the request's, and the same request may work in a moment: it was a 400
    (OpenAI's invalid_request_error, which its SDK raises as BadRequestError and never tries again)."""
    with serving_own_worker(worker) as (base, own, _):
        assert own.stores.bucket is not None
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=HANG_S)
        with seaweed.stopped():
            with pytest.raises(openai.InternalServerError) as caught:
                client.audio.speech.create(model="tts-1", voice="anna", input="Hello there.", extra_body=FAST)
            assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"]
            assert caught.value.body["type"] == "server_error" and caught.value.body["param"] == "storage"
            assert caught.value.body["message"].startswith("storage: could not read voice 'anna'")
            for job in ({"action": "list_voices"}, {"text": "Hello there.", "voice": "anna", **FAST}):
                answer = requests.post(base + "/v1/synthesize", json=job, timeout=HANG_S)
                assert answer.status_code == 503 and answer.headers["retry-after"], answer.text
                assert answer.json()["error"].startswith("storage: could not "), answer.text
            refused = requests.post(base + "/v1/synthesize", json={"text": "Hi.", "speed": 9}, timeout=HANG_S)
            assert refused.status_code == 400  # the request's own fault is still its own
        assert requests.post(base + "/v1/synthesize", json={"action": "list_voices"}, timeout=HANG_S).ok


def test_an_audio_stream_that_fails_after_it_started_is_cut_without_a_traceback(local, caplog):
    """Its status is sent: the body ends without its last chunk, which HTTP clients report; the log says so in
    a line (the failure's traceback is the worker's, logged as a queue job's; none from the server)."""
    base, own, _ = local

    def fail():
        raise RuntimeError("the sampler broke")

    with caplog.at_level("INFO"), held_at(own, NFE + 1, fail):
        response = requests.post(base + "/v1/audio/speech", stream=True, timeout=HANG_S, json={
            "model": "tts-1", "voice": "alloy", "input": LONG_TEXT, "response_format": "pcm",
            "stream_format": "audio", **HELD})
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(response.iter_content(None))
    assert "a streamed answer was cut: internal: RuntimeError: the sampler broke" in caplog.text
    assert "Exception in ASGI application" not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("uvicorn") and r.exc_info]


def open_stream(base: str, body: dict, receive_buffer: int | None = None) -> socket.socket:
    """A streamed /v1/synthesize over a plain socket (its receive buffer ``receive_buffer`` bytes where given),
    read up to the end of its first event."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(HANG_S)
    sock.connect((host, int(port)))
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/synthesize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    seen = b""
    while b"data: " not in seen or b"\n\n" not in seen[seen.index(b"data: "):]:
        more = sock.recv(65536)
        assert more, seen[:300]
        seen += more
    assert seen.startswith(b"HTTP/1.1 200"), seen[:300]
    return sock


def test_a_client_that_goes_away_stops_its_job_and_frees_its_slot_at_once(worker, caplog):
    with serving_own_worker(worker, max_concurrency=1) as (base, own, _), caplog.at_level("INFO"), \
            held_at(own, NFE + 1) as (reached, release):
        sock = open_stream(base, {"text": LONG_TEXT, "stream": True, **HELD})
        assert reached.wait(HANG_S)  # the second piece is being sampled, held at its first step
        sock.close()
        job = wait_for_log(lambda: caplog.text, r"job (http-\w+): stopped: its client went away", HANG_S).group(1)

        queued, answers = threading.Event(), []
        own.engine.on_queued = lambda request: queued.set()
        next_job = threading.Thread(target=lambda: answers.append(
            requests.post(base + "/v1/synthesize", json={"text": "The next one.", **FAST}, timeout=HANG_S)))
        next_job.start()
        try:
            deadline = time.monotonic() + HANG_S
            while not queued.is_set() and next_job.is_alive() and time.monotonic() < deadline:
                queued.wait(0.02)
            # admitted (MAX_CONCURRENCY=1) while the stopped job's sampling is still held
            assert queued.is_set(), [a.text for a in answers]
        finally:
            own.engine.on_queued = None
            release.set()
            next_job.join(HANG_S)
        assert answers[0].status_code == 200
        stopped = wait_for_log(lambda: caplog.text, rf"job {job}: stopped: .*at step (\d+) of {NFE}", HANG_S)
        assert int(stopped.group(1)) == 2  # the step held when the client left was the last one it ran
    assert f"job {job} done" not in caplog.text


def test_a_client_that_stops_reading_its_stream_gives_its_place_up(worker, monkeypatch, caplog):
    """A client that keeps its connection but reads no more (a stuck player; one whose network is gone holds
    it as long, until TCP gives up, a quarter of an hour) held its job's place until the last byte was
    sent, which never came: with MAX_CONCURRENCY such clients every later job was refused, 429, for as long.
    A send that waits past STALLED_CLIENT_S (here 1 s) cuts the stream instead. Its 200 s of pauses (13 MB
    of events, no sampling) are far more than the sockets' buffers hold."""
    from f5_worker import http_streaming

    monkeypatch.setattr(http_streaming, "STALLED_CLIENT_S", 1.0)
    with serving_own_worker(worker, max_concurrency=1, max_total_pause_s=1000) as (base, _, _), \
            caplog.at_level("INFO"):
        text = "Hello there. " + "[pause:10s]" * 20 + " Goodbye."
        with open_stream(base, {"text": text, "stream": True, **FAST}, receive_buffer=4096):
            deadline = time.monotonic() + HANG_S
            while time.monotonic() < deadline:  # refused (429) while the stream holds the one place
                answer = requests.post(base + "/v1/synthesize", json={"text": "The next one.", **FAST},
                                       timeout=HANG_S)
                if answer.status_code != 429:
                    break
                time.sleep(0.1)
            assert answer.status_code == 200, answer.text
        assert "a streamed answer was cut: its client took none of it for 1 s" in caplog.text


def test_a_stream_longer_than_the_grace_period_is_cut_and_its_job_stopped(worker, caplog):
    """On SIGTERM uvicorn waits SHUTDOWN_GRACE_S for the answers in progress, then cancels them: the client
    gets a body cut short (no last chunk), and the job stops."""
    with caplog.at_level("INFO"), serving_own_worker(worker, grace_s=1) as (base, own, server), \
            held_at(own, NFE + 1) as (reached, release):
        response = requests.post(base + "/v1/synthesize", stream=True, timeout=HANG_S,
                                 json={"text": LONG_TEXT, "stream": True, **HELD})
        lines = response.iter_lines()
        assert next(lines).startswith(b"data: ") and reached.wait(HANG_S)
        server.should_exit = True  # what uvicorn's SIGTERM handler sets
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(lines)
        job = wait_for_log(lambda: caplog.text,
                           r"job (http-\w+): stopped: its client went away, or the server is stopping", HANG_S).group(1)
        release.set()
        stopped = wait_for_log(lambda: caplog.text, rf"job {job}: stopped: .*at step (\d+) of {NFE}", HANG_S)
    assert int(stopped.group(1)) == 2


def test_a_client_that_goes_away_while_sending_its_body_leaves_no_traceback(worker, caplog):
    with serving_own_worker(worker) as (base, _, server), caplog.at_level("INFO"):
        host, port = base.removeprefix("http://").split(":")
        for path in ("/v1/audio/speech", "/v1/synthesize"):
            with socket.create_connection((host, int(port)), timeout=HANG_S) as sock:
                sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 100\r\n\r\n{\"mod".encode())
            deadline = time.monotonic() + HANG_S
            while server.server_state.tasks and time.monotonic() < deadline:  # its request handled to its end
                time.sleep(0.02)
            assert not server.server_state.tasks
        assert "Traceback" not in caplog.text and "Exception in ASGI application" not in caplog.text
        assert requests.post(base + "/v1/synthesize", json={"text": "Still here.", **FAST},
                             timeout=HANG_S).status_code == 200
