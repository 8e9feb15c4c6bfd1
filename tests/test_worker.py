"""The worker's own job: parse -> dispatch -> error policy (f5_worker/worker.py).

A bad request is an error naming its field and the worker serves on; an unexpected failure is an
``internal:`` error, logged with its traceback, that hides credentials; a streamed job's failure is its
last item. What a GPU failure does is in test_gpu_failures.py; stopping a job in test_stopping.py.
"""

import base64
import re

import numpy as np
import pytest

from conftest import wav_base64
from f5_worker.errors import JobError

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


BAD_INPUTS = [
    (None, "^input: must be a JSON object"),
    ({"action": "dance"}, "^action: unknown action 'dance'; use one of align, delete_voice, get_voice, health, "
                          "list_models, list_voices, synthesize, upload_voice$"),
    ({}, "^text: is required"),
    ({"text": ""}, "^text: is empty"),
    ({"text": "   "}, "^text: is empty"),
    ({"text": "?!..."}, "^text: has no letters or digits"),
    ({"text": "&nbsp;"}, "^text: has no letters or digits"),  # references to what is not said: nothing to say
    ({"text": "&#x1F600; &shy;"}, "^text: has no letters or digits"),
    ({"text": "[pause] &#128512; [pause]"}, "^text: has no words to speak outside its tags"),
    ({"segments": [{"text": "Hi"}, {"text": "&nbsp;"}]}, "^segments.1.text: has no letters or digits to speak$"),
    ({"segments": [{"text": "&#x1F600;"}]}, "^segments.0.text: has no letters or digits to speak$"),
    ({"text": "x" * 5001}, "^text: must have at most 5000 characters"),
    ({"text": 12}, "^text: must be a valid string"),
    ({"text": "hi", "colour": "red"}, "^colour: unknown field"),
    ({"text": "hi", "speed": 0}, "^speed: must be greater than or equal to 0.3"),
    ({"text": "hi", "speed": "fast"}, "^speed: must be a valid number"),
    ({"text": "hi", "speed": float("nan")}, "^speed: must be a finite number"),
    ({"text": "hi", "cfg_strength": float("inf")}, "^cfg_strength: must be a finite number"),
    ({"text": "hi", "nfe_step": 1000}, "^nfe_step: must be less than or equal to 128"),
    ({"text": "hi", "seed": -1}, "^seed: must be greater than or equal to 0"),
    ({"text": "hi", "cfg_strength": 99}, "^cfg_strength: "),
    ({"text": "hi", "output_format": "aac"}, "^output_format: must be 'wav'"),
    ({"text": "hi", "ref_audio_base64": "!!!", "ref_text": "x"}, "^ref_audio_base64: not valid base64"),
    ({"text": "hi", "ref_audio_base64": base64.b64encode(b"junk" * 100).decode(), "ref_text": "x"},
     "^ref_audio_base64: could not decode audio"),
    ({"text": "hi", "ref_audio_base64": "UklGRg=="}, "^ref_text: is required with ref_audio_base64"),
    ({"text": "hi", "ref_text": "orphan"}, "^ref_text: only applies"),
    ({"text": "hi", "voice": "anna", "ref_text": "ignored?"}, "^ref_text: does not apply with voice"),
    ({"text": "hi", "ref_audio_base64": wav_base64(np.full(24000, 0.2, np.float32), 24000), "ref_text": "word " * 200},
     r"^ref_text: is 999 bytes of text for 1\.\d s of reference audio, over 60 a second"),
    ({"text": "hi", "ref_audio_base64": "UklGRg==", "ref_audio_url": "http://a/b.wav", "ref_text": "x"},
     "^ref_audio_base64: give only one"),
]


@pytest.mark.parametrize("job,pattern", BAD_INPUTS)
def test_bad_input_gives_named_error_and_worker_keeps_serving(worker, job, pattern):
    out = worker.handle(job, job_id="bad")
    assert set(out) == {"error"}, out
    assert "Traceback" not in out["error"]
    assert re.search(pattern, out["error"]), out["error"]
    ok = run(worker, text="Still alive.", seed=2)
    assert "audio_base64" in ok


def test_stream_is_refused_where_the_worker_does_not_stream(worker):
    out = worker.handle({"text": "Hi there.", "stream": True})
    assert out["error"].startswith("stream: this endpoint does not stream")


# --- the error policy for what no request check foresaw ---------------------------------------------------


def test_an_unexpected_failure_is_internal_logged_hides_credentials_and_the_worker_serves_on(worker, monkeypatch,
                                                                                            caplog):
    def broken(request, job):
        raise ValueError("could not reach https://user:s3cret@bucket.example/x")

    monkeypatch.setitem(worker.actions, "list_models", broken)
    with caplog.at_level("ERROR"):
        out = worker.handle({"action": "list_models"}, job_id="oops")
    assert out == {"error": "internal: ValueError: could not reach https://***@bucket.example/x"}
    assert "job oops failed" in caplog.text and "Traceback" in caplog.text  # the traceback is the operator's
    assert worker.gpu_failure is None and worker.handle({"action": "health"})["status"] == "ok"


def test_running_out_of_host_memory_is_a_job_error_of_its_own(worker, monkeypatch):
    def hungry(request, job):
        raise MemoryError

    monkeypatch.setitem(worker.actions, "list_models", hungry)
    assert worker.handle({"action": "list_models"}) == {"error": "internal: out of memory; try a shorter text"}


def test_a_streamed_jobs_failure_is_its_last_item_and_its_whole_result(worker, monkeypatch):
    """Items already made stay sent; the error comes after them, and ``handle`` (nothing reading a stream)
    answers with the error alone, not a list that hides it."""
    def stream(fail: bool):
        def action(request, job):
            yield {"piece": 1}
            yield {"piece": 2}
            if fail:
                raise JobError("text", "could not go on")
        return action

    monkeypatch.setitem(worker.actions, "list_models", stream(fail=True))
    assert list(worker.items({"action": "list_models"})) == [{"piece": 1}, {"piece": 2},
                                                              {"error": "text: could not go on"}]
    assert worker.handle({"action": "list_models"}) == {"error": "text: could not go on"}
    monkeypatch.setitem(worker.actions, "list_models", stream(fail=False))
    assert worker.handle({"action": "list_models"}) == [{"piece": 1}, {"piece": 2}]
