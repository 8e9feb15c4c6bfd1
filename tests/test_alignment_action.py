"""The ``align`` action: request validation, clear errors, and a real alignment of a recording."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import numpy as np
import pysubs2
import pytest
import soundfile as sf
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, wav_base64
from f5_worker.actions.align import AlignAction
from f5_worker.alignment.selection import load_aligner
from f5_worker.errors import JobError
from f5_worker.fetch import DownloadLimits
from f5_worker.schema import parse_job
from f5_worker.timings import quality_field, timing_fields

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()


@pytest.fixture(scope="module")
def action():
    return AlignAction(load_aligner("sphinx"), DownloadLimits(10_000_000, 5))


def run(action, **fields) -> dict:
    """Validate like the handler does, then align; JobErrors become the handler's error dict."""
    try:
        return action(parse_job({"action": "align", **fields}))
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


# --- quality gate: re-sample while the audio does not say the text ----------------------------


def test_quality_gate_resamples_until_the_audio_matches():
    from f5_worker.alignment import espeak
    from f5_worker.alignment.quality import synthesize_until_aligned

    text = "Please call Stella and ask her to bring these things with her from the store."
    wrong = "Fourteen ducks swam slowly across the pond near the old mill."
    said = {11: wrong, 12: wrong, 13: text}  # seed -> what that "synthesis" says
    seeds = iter([12, 13, 14])
    calls = []

    def attempt(seed):
        calls.append(seed)
        audio, sr, _ = espeak.synthesize(said[seed])
        return audio, sr

    result = synthesize_until_aligned(attempt, load_aligner("sphinx"), text, seed=11, max_retries=2,
                                      new_seed=lambda: next(seeds))
    assert calls == [11, 12, 13]
    assert result.seed == 13 and result.retries == 2
    assert result.alignment.score > 0.6
    assert quality_field([(result.alignment, 1.0, result.retries)])["retries"] == 2


class _Recording:
    """The real aligner, keeping each result it gives, so a test can see every attempt's score."""

    name = "sphinx"

    def __init__(self, inner):
        self.inner, self.results = inner, []

    def align(self, audio, sample_rate, text, *, language="en"):
        self.results.append(self.inner.align(audio, sample_rate, text, language=language))
        return self.results[-1]


def espeak_as_a_new_process_says(texts: list[str], tmp_path) -> list[tuple[np.ndarray, int]]:
    """espeak-ng's speech of ``texts``, said in this order by a process that has said nothing before.

    espeak-ng keeps synthesis state from one utterance to the next in its process, and nothing in its API
    resets it (a new voice, espeak_Initialize, espeak_ng_SetRandSeed: the same text still comes out
    different after other speech); only a voice without that state (``steady``) says it the same, and it
    is not the voice these scores were calibrated on. Scores calibrated on its speech hold only for speech
    made from the same start, not after whatever the tests before this one had it say.
    """
    out = tmp_path / "speech.npz"
    code = ("import sys, numpy as np; from f5_worker.alignment import espeak; "
            "said = [espeak.synthesize(t)[:2] for t in sys.argv[2:]]; "
            "np.savez(sys.argv[1], sr=said[0][1], **{f'w{i}': w for i, (w, _) in enumerate(said)})")
    subprocess.run([sys.executable, "-c", code, str(out), *texts], check=True, timeout=60)
    with np.load(out) as saved:
        return [(saved[f"w{i}"], int(saved["sr"])) for i in range(len(texts))]


def test_quality_gate_stops_at_max_retries_and_keeps_the_best(tmp_path):
    from f5_worker.alignment.quality import alignment_mismatch, synthesize_until_aligned

    text = "Please call Stella."
    # Speech the text does not explain lowers the score, so every attempt misses the gate by a different
    # amount: the text and three more words (about 0.35), the text and two (about 0.48), two other words
    # only (about 0.21). The best attempt is neither the first nor the last.
    said = dict(zip([1, 2, 3], espeak_as_a_new_process_says(
        [f"{text} Fourteen ducks swam slowly.", f"{text} Fourteen ducks.", "Fourteen ducks."], tmp_path)))
    calls, waves = [], {}

    def attempt(seed):
        calls.append(seed)
        audio, sr = said[seed]
        waves[seed] = audio
        return audio, sr

    aligner = _Recording(load_aligner("sphinx"))
    result = synthesize_until_aligned(attempt, aligner, text, seed=1, max_retries=2,
                                      new_seed=lambda: len(calls) + 1)
    assert calls == [1, 2, 3] and result.retries == 2
    assert all(alignment_mismatch(a) for a in aligner.results)
    first, middle, last = (a.score for a in aligner.results)
    assert middle > first > last
    assert result.seed == 2 and result.alignment is aligner.results[1] and result.wave is waves[2]


def test_quality_gate_never_accepts_silence_however_the_aligner_scores_it():
    from f5_worker.alignment import espeak
    from f5_worker.alignment.quality import alignment_mismatch, synthesize_until_aligned

    text = "Please call Stella."
    silence, sr = np.zeros(48000, np.float32), 24000
    aligner = _Recording(load_aligner("sphinx"))
    assert not alignment_mismatch(aligner.align(silence, sr, text))  # the score alone would let it pass
    speech, speech_sr, _ = espeak.synthesize("Fourteen ducks swam slowly across the pond.")  # fails the gate
    said = {1: (silence, sr), 2: (speech, speech_sr), 3: (silence, sr)}
    result = synthesize_until_aligned(lambda seed: said[seed], aligner, text, seed=1, max_retries=2,
                                      new_seed=iter([2, 3, 4]).__next__)
    assert result.retries == 2 and result.seed == 2  # sound that misses beats silence that scores high
    assert aligner.results[1].score > aligner.results[2].score  # by score alone, silence would be kept
    only_silence = synthesize_until_aligned(lambda seed: (silence, sr), aligner, text, seed=1, max_retries=1)
    assert only_silence.retries == 1


@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=6))
def test_the_attempt_kept_is_the_first_that_passes_else_the_best_ranked(attempts):
    """``kept_attempt`` folded over attempts (sound or silence, a score) keeps the first that passes the gate,
    else the first of the best: any sound above silence, then the highest score."""
    from f5_worker.alignment.quality import MISMATCH_SCORE, GatedResult, kept_attempt
    from f5_worker.timed_text import Alignment

    sound, silence = np.full(240, 0.1, dtype=np.float32), np.zeros(240, dtype=np.float32)
    tried = [GatedResult(sound if loud else silence, 24000, Alignment([], [], score, "sphinx", False), n, n)
             for n, (loud, score) in enumerate(attempts)]
    kept = None
    for attempt in tried:
        kept = kept_attempt(kept, attempt)
        if attempt.wave is sound and attempt.alignment.score >= MISMATCH_SCORE:
            break
    passing = [a for a, (loud, score) in zip(tried, attempts) if loud and score >= MISMATCH_SCORE]
    best = max((loud, score) for loud, score in attempts)
    assert kept is (passing[0] if passing else tried[attempts.index(best)])


def test_quality_gate_accepts_a_good_first_attempt():
    from f5_worker.alignment.quality import synthesize_until_aligned

    wave, sr = sf.read(str(DEFAULT_VOICE_WAV), dtype="float32")
    result = synthesize_until_aligned(lambda seed: (wave, sr), load_aligner("sphinx"), DEFAULT_VOICE_TEXT,
                                      seed=5, max_retries=2)
    assert result.seed == 5 and result.retries == 0


def test_worker_without_ctc_weights_falls_back_instead_of_dying(worker, tiny_settings, tmp_path, monkeypatch):
    from dataclasses import replace

    from f5_worker.worker import Worker

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty model cache
    ctc_worker = Worker(replace(tiny_settings, aligner="ctc"), worker.models)
    assert ctc_worker.aligner.name == "auto"
    out = ctc_worker.handle({"action": "align", "audio_base64": REF_B64, "text": DEFAULT_VOICE_TEXT})
    assert out["aligner"] == "sphinx"
