"""OpenAI's routes as queue jobs (``openai_route``, f5_worker/actions/openai_routes.py), through the Worker:
the same mapping and the same errors as the HTTP server's routes (checked against the HTTP server itself,
run in this process over real HTTP), the audio as base64 with its format. RunPod's own worker loop and local
server carry these jobs in test_runpod_worker.py and test_runpod_local.py."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import pytest
import requests
import soundfile as sf
from test_http_server import FAST, LONG_TEXT

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, serving
from f5_worker import audio
from f5_worker.tts.chunking import STREAM_ITEM_BYTES, StreamPacer

SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello there.", "response_format": "wav", **FAST}


def route(worker, path: str, body: dict | None = None, job_id: str = "openai") -> dict:
    job = {"openai_route": path} if body is None else {"openai_route": path, "openai_input": body}
    return worker.handle(job, job_id=job_id)


@pytest.fixture(scope="module")
def http(worker):
    """The HTTP server's app over the same Worker, on a free port in this process; yields its base URL."""
    from f5_worker.http_server import create_app

    with serving(create_app(worker=worker)) as (base, _):
        yield base


@pytest.mark.parametrize("fmt, content_type", [("wav", "audio/wav"), ("mp3", "audio/mpeg"), ("flac", "audio/flac"),
                                               ("opus", "audio/ogg")])
def test_speech_is_the_audio_as_base64_with_its_format(worker, fmt, content_type):
    out = route(worker, "/v1/audio/speech", {**SPEECH, "response_format": fmt})
    assert out.keys() == {"audio_base64", "format", "content_type", "sample_rate", "duration", "model", "voice",
                          "delivery"}, out
    wave, rate = sf.read(io.BytesIO(base64.b64decode(out["audio_base64"])))
    assert rate == out["sample_rate"] == 24000 and abs(len(wave) / rate - out["duration"]) < 0.08
    assert (out["format"], out["content_type"], out["model"], out["voice"], out["delivery"]) == \
        (fmt, content_type, "tiny", "default", "inline")


def test_pcm_is_raw_16_bit_samples(worker):
    out = route(worker, "/v1/audio/speech", {**SPEECH, "response_format": "pcm"})
    data = base64.b64decode(out["audio_base64"])
    assert out["content_type"].startswith("audio/L16") and abs(len(data) / 2 - out["duration"] * 24000) <= 2


def test_speech_is_the_http_routes_audio(worker, http):
    """The same request and seed through both front doors: the same bytes, model and voice."""
    queued = route(worker, "/v1/audio/speech", SPEECH)
    served = requests.post(http + "/v1/audio/speech", json=SPEECH, timeout=120)
    assert served.status_code == 200
    assert base64.b64decode(queued["audio_base64"]) == served.content
    assert queued["content_type"] == served.headers["content-type"]
    assert (queued["model"], queued["voice"]) == (served.headers["x-model"], served.headers["x-voice"])


def test_an_openai_voice_name_means_the_stored_voice_of_that_name(worker):
    clip = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()
    assert "error" not in worker.handle({"action": "upload_voice", "name": "shimmer", "audio_base64": clip,
                                         "ref_text": DEFAULT_VOICE_TEXT, "overwrite": True})
    try:
        assert route(worker, "/v1/audio/speech", {**SPEECH, "voice": "shimmer"})["voice"] == "shimmer"
        assert route(worker, "/v1/audio/speech", {**SPEECH, "voice": "nova"})["voice"] == "default"
    finally:
        worker.handle({"action": "delete_voice", "name": "shimmer"})


@pytest.mark.parametrize("job", [{"openai_route": "/v1/models"}, {"openai_route": "/v1/models", "openai_input": {}},
                                 {"openai_route": "/v1/models", "openai_input": None}])
def test_models_is_openais_list_as_the_http_route_gives_it(worker, http, job):
    out = worker.handle(job)
    assert out == requests.get(http + "/v1/models", timeout=30).json()
    ids = [m["id"] for m in out["data"]]
    assert "tiny" in ids and "tts-1" in ids and out["object"] == "list"


SAME_AS_HTTP = [
    {**SPEECH, "response_format": "aac"},
    {**SPEECH, "instructions": "Speak cheerfully."},
    {**SPEECH, "speed": 4.0},
    {**SPEECH, "model": "no-such-model"},
    {**SPEECH, "voice": "nobody"},
    {**SPEECH, "input": ""},
    {**SPEECH, "input": "x" * 5001},
    {**SPEECH, "stream_format": "ogg"},
    {**SPEECH, "timestamp_granularities": ["segment"]},
    {**SPEECH, "colour": "blue"},
    {**SPEECH, "nfe_step": 1000},
    {**SPEECH, "voice": 7},
    {key: value for key, value in SPEECH.items() if key != "input"},
    {},
]


@pytest.mark.parametrize("body", SAME_AS_HTTP, ids=range(len(SAME_AS_HTTP)))
def test_a_bad_speech_request_gets_the_http_routes_error(worker, http, body):
    queued = route(worker, "/v1/audio/speech", body)
    served = requests.post(http + "/v1/audio/speech", json=body, timeout=60)
    assert served.status_code == 400
    assert queued == served.json(), (queued, served.json())
    error = queued["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["message"].startswith(error["param"]), error


def test_streamed_speech_needs_a_worker_that_streams(worker):
    """Without STREAMING a queue keeps one result: sse is refused before any work, naming the field and the
    setting, in OpenAI's form."""
    error = route(worker, "/v1/audio/speech", {**SPEECH, "stream_format": "sse"})["error"]
    assert error["param"] == "stream_format" and error["type"] == "invalid_request_error"
    assert error["message"].startswith("stream_format: this endpoint does not stream; set STREAMING=1"), error


def streamed(worker, body: dict, job_id: str = "sse") -> list:
    """A speech job's items on a worker that streams (STREAMING=1)."""
    return list(worker.items({"openai_route": "/v1/audio/speech", "openai_input": body}, job_id, streams=True))


def events_of(text: str) -> list[dict]:
    assert text.endswith("\n\n") and all(block.startswith("data: ") for block in text.split("\n\n") if block)
    return [json.loads(block.removeprefix("data: ")) for block in text.split("\n\n") if block]


def delta_audio(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")


def test_streamed_speech_is_the_http_routes_events_as_text_items(worker, http, monkeypatch):
    """Each item is text, ``data: {...}\n\n``, as worker-vllm yields its streamed chat completions; joined,
    they are the HTTP route's event stream: the same events, the same audio, which decodes as one file.
    Where a stream cuts its later pieces depends on its measured speed (chunking.StreamPacer), which a busy
    machine changes between two runs: here every later piece is as long as a piece may be, in both."""
    monkeypatch.setattr(StreamPacer, "next_seconds", lambda pacer, now, ref_seconds: pacer.max_seconds)
    body = {**SPEECH, "input": LONG_TEXT, "stream_format": "sse", "timestamp_granularities": ["word"]}
    items = streamed(worker, body)
    assert items and all(isinstance(item, str) and item.startswith("data: ") for item in items), items[:1]
    assert all(len(json.dumps(item)) < STREAM_ITEM_BYTES for item in items)
    events = events_of("".join(items))
    assert [e["type"] for e in events].count("speech.audio.done") == 1 and events[-1]["type"] == "speech.audio.done"
    over_http = events_of(requests.post(http + "/v1/audio/speech", json=body, timeout=300).text)
    assert [e["type"] for e in events] == [e["type"] for e in over_http]
    assert delta_audio(events) == delta_audio(over_http)
    wave, rate = sf.read(io.BytesIO(delta_audio(events)))
    timed = [e for e in events if e["type"] == "speech.audio.timestamps"]
    assert len(timed) >= 2 and rate == 24000
    assert len(wave) / rate == pytest.approx(timed[-1]["offset"] + timed[-1]["duration"], abs=1e-3)


def test_streamed_speech_refused_before_its_first_piece_is_one_error_object(worker):
    assert streamed(worker, {**SPEECH, "input": "", "stream_format": "sse"}) == [{"error": {
        "message": "input: is empty", "type": "invalid_request_error", "param": "input", "code": None}}]


def test_streamed_speech_that_fails_after_its_first_piece_ends_with_an_error_event(worker, monkeypatch):
    encode, calls = audio.encode_audio, []

    def fails_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return encode(*args, **kwargs)

    monkeypatch.setattr(audio, "encode_audio", fails_second)
    items = streamed(worker, {**SPEECH, "input": LONG_TEXT, "stream_format": "sse"}, job_id="broken")
    assert all(isinstance(item, str) for item in items)
    events = events_of("".join(items))
    assert events[0]["type"] == "speech.audio.delta" and "speech.audio.done" not in [e["type"] for e in events]
    assert events[-1] == {"type": "error", "error": {"message": "internal: RuntimeError: boom",
                                                     "type": "server_error", "param": None, "code": None}}


def test_a_stream_past_what_runpod_keeps_of_a_result_ends_saying_why(worker, monkeypatch):
    """RunPod keeps every item in the job's result and never completes a job whose result passes its limit:
    the events stop, with an error event naming ``input``, while what is kept is still under the limit."""
    limit = 150_000
    monkeypatch.setattr(worker.synthesis, "settings", dataclasses.replace(worker.synthesis.settings,
                                                                          max_inline_bytes=limit))
    items = streamed(worker, {**SPEECH, "input": LONG_TEXT, "stream_format": "sse", "response_format": "wav"})
    assert len(json.dumps(items)) <= limit
    events = events_of("".join(items))
    assert events[0]["type"] == "speech.audio.delta" and "speech.audio.done" not in [e["type"] for e in events]
    assert events[-1]["error"]["code"] == "stream_too_long" and events[-1]["error"]["param"] == "input"
    assert "mp3 or opus" in events[-1]["error"]["message"]


def test_word_timings_come_with_the_speech_as_on_the_http_route(worker):
    answer = route(worker, "/v1/audio/speech", {**SPEECH, "timestamp_granularities": ["word", "character"]})
    assert answer["words"] and answer["chars"] and answer["words"][0]["char_start"] == 0
    assert "words" not in route(worker, "/v1/audio/speech", SPEECH)


def test_a_speech_job_without_a_body_names_what_is_missing(worker):
    assert route(worker, "/v1/audio/speech")["error"]["message"] == "model: is required"


@pytest.mark.parametrize("job, param, words", [
    ({"openai_route": "/v1/chat/completions", "openai_input": {"messages": []}}, "openai_route",
     "'/v1/chat/completions' is not served here; this worker serves /v1/audio/speech and /v1/models"),
    ({"openai_route": 7}, "openai_route", "must be a valid string"),
    ({"openai_route": ""}, "openai_route", "must have at least 1 character"),
    ({"openai_route": "/v1/audio/speech", "openai_input": ["a list"]}, "openai_input", "must be a valid dictionary"),
    ({"openai_route": "/v1/models", "stream": True}, "stream", "unknown field"),
])
def test_a_bad_route_job_is_refused_in_openais_form(worker, job, param, words):
    error = worker.handle(job)["error"]
    assert error["param"] == param and error["message"] == f"{param}: {words}", error


def test_a_job_with_an_action_is_never_an_openai_route(worker):
    out = worker.handle({"action": "list_models", "openai_route": "/v1/models"})
    assert out == {"error": "openai_route: unknown field"}


def test_a_speech_over_the_inline_limit_is_refused_by_its_input(worker, monkeypatch):
    """No bucket for a link: refused before sampling, in the words of the native rule, naming ``input``."""
    monkeypatch.setattr(worker.synthesis, "settings", dataclasses.replace(worker.synthesis.settings,
                                                                          max_inline_bytes=1000))
    error = route(worker, "/v1/audio/speech", {**SPEECH, "input": "A long sentence to say. " * 20})["error"]
    assert error["param"] == "input" and "over the 0.0 MB inline limit" in error["message"], error
    assert "response_format mp3/opus" in error["message"] and "output_format" not in error["message"], error


def test_an_unexpected_failure_is_a_server_error_and_the_worker_serves_on(worker, monkeypatch, caplog):
    def broken(request, job):
        raise ValueError("could not reach https://user:s3cret@bucket.example/x")

    monkeypatch.setattr(worker.synthesis, "speak", broken)
    with caplog.at_level("ERROR"):
        error = route(worker, "/v1/audio/speech", SPEECH, job_id="broken")["error"]
    assert error == {"message": "internal: ValueError: could not reach https://***@bucket.example/x",
                     "type": "server_error", "param": None, "code": None}
    assert "job broken failed" in caplog.text and "Traceback" in caplog.text  # the traceback is the operator's
    monkeypatch.undo()
    assert "audio_base64" in route(worker, "/v1/audio/speech", SPEECH)


def test_running_out_of_host_memory_is_a_server_error_of_its_own(worker, monkeypatch):
    def hungry(request, job):
        raise MemoryError

    monkeypatch.setattr(worker.synthesis, "speak", hungry)
    assert route(worker, "/v1/audio/speech", SPEECH)["error"] == {
        "message": "internal: out of memory; try a shorter input", "type": "server_error", "param": None, "code": None}


def test_a_failed_gpu_answers_every_route_job_in_openais_form_with_refresh_worker(worker, monkeypatch):
    monkeypatch.setattr(worker, "gpu_failure", "CUDA error: an illegal memory access was encountered")
    out = route(worker, "/v1/models")
    assert out["refresh_worker"] is True and out["error"]["type"] == "server_error"
    assert out["error"]["message"].startswith("internal: the GPU failed (CUDA error: an illegal memory access")
    assert worker.handle({"action": "list_models"})["error"] == out["error"]["message"]  # the native form
