"""The request models (f5_worker/schema.py): what a job may say, and the ``<field>: <problem>`` error for what
it may not. The error for each action's own checks is with its action's tests (test_voice_jobs.py,
test_alignment_action.py); a bad input's error through the worker in test_worker.py."""

import base64

import pytest

from conftest import DEFAULT_VOICE_WAV
from f5_worker import schema
from f5_worker.errors import JobError
from f5_worker.schema import MAX_TEXT_CHARS, parse_job

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()
FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


def refused(job: dict) -> str:
    with pytest.raises(JobError) as caught:
        parse_job(job)
    return str(caught.value)


ESCAPED_NEWLINES = "a\\nb" * 20  # 80 characters as shown: 60 of the value's, each newline written as \n


@pytest.mark.parametrize("job, error", [
    ({"action": "x" * 1_000_000}, "action: unknown action '" + "x" * 79 + "... (1000002 characters); use one of "
                                  "align, delete_voice, get_voice, health, list_models, list_voices, synthesize, "
                                  "upload_voice"),
    ({"text": "hi", "y" * 10_000: 1}, "y" * 80 + "... (10000 characters): unknown field"),
    ({"action": "health", "a\nb" * 5000: 1}, ESCAPED_NEWLINES + "... (15000 characters): unknown field"),
    ({"text": "hi", "speed": "9" * 100_000}, "speed: must be a valid number, not a string"),
])
def test_an_echoed_value_is_cut_to_80_characters_and_its_length_stated(worker, job, error):
    """``{"action": "x" * 1000000}`` gave a 1,000,115-character error. The cut counts escapes as shown, so the
    field never outgrows the error's bound and is cut twice (15000 newlines were stated as 129 characters);
    an action is quoted as its ``repr``, whose length the error states."""
    assert worker.handle(job) == {"error": error}


# --- numbers are JSON numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("job, error", [
    ({"text": "Hi.", "duration": True}, "duration: must be a valid number, not true or false"),
    ({"text": "Hi.", "speed": False}, "speed: must be a valid number, not true or false"),
    ({"text": "Hi.", "seed": "42"}, "seed: must be a valid integer, not a string"),
    ({"text": "Hi.", "nfe_step": True}, "nfe_step: must be a valid integer, not true or false"),
    ({"text": "Hi.", "target_rms": "0.1"}, "target_rms: must be a valid number, not a string"),
    ({"text": "Hi.", "max_lines": True}, "max_lines: must be a valid integer, not true or false"),
    ({"segments": [{"text": "Hi.", "speed": True}]}, "segments.0.speed: must be a valid number, not true or false"),
    ({"text": "Hi.", "word_timings": 1}, "word_timings: must be a valid boolean"),
    ({"text": "Hi.", "stream": "false"}, "stream: must be a valid boolean"),
    ({"action": "upload_voice", "name": "a", "audio_base64": REF_B64, "overwrite": 0}, "overwrite: must be a valid boolean"),
])
def test_a_boolean_or_a_string_is_no_number_and_a_number_no_boolean(worker, job, error):
    """``"duration": true`` made 1 s of audio and ``"seed": "42"`` was read as 42: a client with such a bug
    gets an error, not a guess."""
    assert worker.handle(job) == {"error": error}


def test_an_integral_number_is_still_taken_where_an_integer_is_asked():
    assert schema.parse_job({"text": "Hi.", "nfe_step": 16.0, "seed": 7, "speed": 1}).nfe_step == 16


# --- text or segments ------------------------------------------------------------------------------------


def test_an_empty_list_of_segments_is_refused_in_words_of_its_own(worker):
    assert run(worker, segments=[])["error"] == "segments: is empty; give at least one segment, or text"


def test_text_and_segments_are_one_or_the_other():
    assert refused({"text": "Hi.", "segments": [{"text": "Hi."}]}) == "segments: give either text or segments, not both"
    assert refused({"segments": [{"text": "Hi."}, {"text": "?!"}]}) == "segments.1.text: has no letters or digits to speak"


def test_segments_are_bounded_by_their_text_together_as_text_is():
    half = "word " * (MAX_TEXT_CHARS // 10)  # MAX_TEXT_CHARS / 2 characters
    together = parse_job({"segments": [{"text": half}, {"text": half}]})
    assert together.script_text == half + "\n" + half  # what the bounds and estimates read
    assert refused({"segments": [{"text": half}, {"text": half + "x"}]}) == (
        f"segments: hold more than {MAX_TEXT_CHARS} characters of text together")


@pytest.mark.parametrize("job, error", [
    ({"speed": 1.0}, "duration: sets the speed itself: give either duration or speed"),  # the default, but given
    ({"segments": [{"text": "Hi.", "speed": 1.2}]}, "duration: sets the speed itself: give either duration or speed"),
    ({"remove_silence": True}, "duration: cannot be combined with remove_silence, which shortens the audio"),
])
def test_duration_sets_the_speed_so_nothing_else_may(job, error):
    base = {"text": "Hi."} if "segments" not in job else {}
    assert refused({**base, "duration": 2.0, **job}) == error
    assert parse_job({"text": "Hi.", "duration": 2.0}).speed == 1.0
