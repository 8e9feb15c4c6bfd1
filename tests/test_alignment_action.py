"""The ``align`` action: request validation, clear errors, and a real alignment of a recording."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pysubs2
import pytest
import soundfile as sf
import webvtt

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, wav_base64
from f5_worker.actions.align import AlignAction
from f5_worker.alignment.selection import load_aligner
from f5_worker.errors import JobError
from f5_worker.fetch import DownloadLimits
from f5_worker.job import Job
from f5_worker.schema import parse_job
from f5_worker.timings import quality_field, timing_fields

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()


@pytest.fixture(scope="module")
def action():
    return AlignAction(load_aligner("sphinx"), DownloadLimits(10_000_000, 5))


def run(action, **fields) -> dict:
    """Validate like the handler does, then align; JobErrors become the handler's error dict."""
    try:
        return action(parse_job({"action": "align", **fields}), Job())
    except JobError as exc:
        return {"error": str(exc)}


def to_ms(timestamp: str) -> int:
    """``HH:MM:SS.mmm`` as whole milliseconds."""
    hours, minutes, seconds = timestamp.split(":")
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


def test_align_returns_words_chars_captions_and_quality(action):
    out = run(action, audio_base64=REF_B64, text=DEFAULT_VOICE_TEXT, char_timings=True,
              caption_formats=["srt", "vtt", "ass", "csv", "json"])
    assert [w["word"] for w in out["words"]] == DEFAULT_VOICE_TEXT.split()
    assert len(out["chars"]) == len(DEFAULT_VOICE_TEXT.replace(" ", ""))
    starts = [w["start"] for w in out["words"]]
    assert starts == sorted(starts) and 0 <= starts[0] and out["words"][-1]["end"] <= out["duration"]
    assert set(out["captions"]) == {"srt", "vtt", "ass", "csv", "json"}
    # each cue holds its words once, in order, from its first word's start to its last word's end; a VTT
    # cue marks when each later word of it starts
    words = [(w["word"], round(w["start"] * 1000), round(w["end"] * 1000)) for w in out["words"]]
    srt = [(c.plaintext.split(), c.start, c.end) for c in pysubs2.SSAFile.from_string(out["captions"]["srt"])]
    vtt = [(c.text.split(), to_ms(c.start), to_ms(c.end), [(word, to_ms(at)) for at, word in
                                                            re.findall(r"<([\d:.]+)>(\S+)", c.raw_text)])
           for c in webvtt.from_buffer(io.StringIO(out["captions"]["vtt"]))]
    assert [word for cue in srt for word in cue[0]] == DEFAULT_VOICE_TEXT.split()
    assert [cue[:3] for cue in vtt] == srt
    at = 0
    for said, start, end, marks in vtt:
        cue_words = words[at:at + len(said)]
        assert (said, start, end) == ([w for w, _, _ in cue_words], cue_words[0][1], cue_words[-1][2])
        assert marks == [(w, word_start) for w, word_start, _ in cue_words[1:]]
        at += len(said)
    assert out["quality"]["alignment_score"] > 0.9 and out["quality"]["flagged_words"] == []
    assert out["aligner"] == "sphinx" and out["timings_estimated"] is False


def test_defaults_are_words_and_srt_only(action):
    out = run(action, audio_base64=REF_B64, text=DEFAULT_VOICE_TEXT)
    assert "words" in out and "chars" not in out and set(out["captions"]) == {"srt"}
    out = run(action, audio_base64=REF_B64, text=DEFAULT_VOICE_TEXT, word_timings=False, caption_formats=[])
    assert "words" not in out and "captions" not in out


def test_wrong_transcript_is_reported_by_quality(action):
    out = run(action, audio_base64=REF_B64, text="The quick brown fox jumps over the lazy dog.")
    assert out["quality"]["alignment_score"] < 0.6


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"audio_base64": REF_B64, "text": ""}, "text: is empty"),
        ({"audio_base64": REF_B64, "text": "   "}, "text: is empty"),
        ({"audio_base64": REF_B64, "text": "... — !"}, "text: has no letters or digits"),
        ({"text": "hello"}, "audio_base64: give exactly one of audio_url or audio_base64"),
        ({"audio_base64": REF_B64, "audio_url": "https://example.com/a.wav", "text": "hi"}, "audio_base64: give exactly one"),
        ({"audio_base64": "not base64!!", "text": "hello"}, "audio_base64: not valid base64"),
        ({"audio_base64": base64.b64encode(b"this is not audio at all").decode(), "text": "hello"},
         "audio_base64: could not decode audio"),
        ({"audio_base64": wav_base64(np.zeros(400, np.float32), 16000), "text": "hello"}, "audio_base64: audio is only"),
        ({"audio_base64": REF_B64, "text": "hi", "language": "english!"}, "language: must be a language tag"),
        ({"audio_base64": REF_B64, "text": "hi", "caption_formats": ["docx"]}, "caption_formats.0:"),
        ({"audio_base64": REF_B64, "text": "hi", "speed": 2}, "speed: unknown field"),
    ],
)
def test_bad_requests_get_clear_errors(action, fields, message):
    out = run(action, **fields)
    assert set(out) == {"error"}
    assert out["error"].startswith(message)


def test_silent_audio_aligns_without_failing(action):
    out = run(action, audio_base64=wav_base64(np.zeros(16000, np.float32), 16000), text="Hello there, world.")
    assert [w["word"] for w in out["words"]] == ["Hello", "there,", "world."]
    assert all(0 <= w["start"] <= w["end"] <= 1.0 for w in out["words"])


def test_quality_and_timing_fields_shape():
    from f5_worker.alignment.estimate import EstimateAligner
    from f5_worker.schema import TimingOptions

    wave, sr = sf.read(str(DEFAULT_VOICE_WAV), dtype="float32")
    result = EstimateAligner().align(wave, sr, DEFAULT_VOICE_TEXT)
    fields = timing_fields(result, TimingOptions(char_timings=True, caption_formats=["csv"]), len(wave) / sr)
    assert fields["timings_estimated"] is True and fields["aligner"] == "estimate"
    assert set(fields) == {"words", "chars", "captions", "timings_estimated", "aligner"}
    assert quality_field([(result, 1.0, 2)]) == {"alignment_score": 0.0, "retries": 2, "flagged_words": []}


# --- through the worker, as RunPod calls it ---------------------------------------------------


def test_worker_aligns_a_recording(worker):
    out = worker.handle({"action": "align", "audio_base64": REF_B64, "text": DEFAULT_VOICE_TEXT,
                         "caption_formats": ["vtt"]})
    assert "error" not in out, out
    assert [w["word"] for w in out["words"]] == DEFAULT_VOICE_TEXT.split()
    assert out["captions"]["vtt"].startswith("WEBVTT")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"audio_base64": REF_B64, "text": ""}, "text: is empty"),
        ({"audio_base64": base64.b64encode(b"RIFF....WAVEjunk").decode(), "text": "hello"},
         "audio_base64: could not decode audio"),
        ({"audio_base64": "%%%", "text": "hello"}, "audio_base64: not valid base64"),
        ({"text": "hello"}, "audio_base64: give exactly one"),
    ],
)
def test_worker_refuses_bad_align_jobs_clearly(worker, fields, message):
    out = worker.handle({"action": "align", **fields})
    assert set(out) == {"error"} and out["error"].startswith(message), out


def test_chinese_text_without_a_language_is_estimated_not_misaligned(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ctc weights
    auto = AlignAction(load_aligner("auto"), DownloadLimits(10_000_000, 5))
    out = run(auto, audio_base64=REF_B64, text="你好，世界。")
    assert out["language"] == "zh"
    assert [w["word"] for w in out["words"]] == ["你", "好，", "世", "界。"]
    assert out["aligner"] == "estimate" and out["timings_estimated"] is True


def test_worker_without_ctc_weights_falls_back_instead_of_dying(worker, tiny_settings, tmp_path, monkeypatch):
    from dataclasses import replace

    from f5_worker.worker import Worker

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty model cache
    ctc_worker = Worker(replace(tiny_settings, aligner="ctc"), worker.models)
    assert ctc_worker.aligner.name == "auto"
    out = ctc_worker.handle({"action": "align", "audio_base64": REF_B64, "text": DEFAULT_VOICE_TEXT})
    assert out["aligner"] == "sphinx"
