"""Synthesize jobs through Worker.handle on the tiny models: outputs, seeds, chunking, errors."""

import base64
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, decode_b64_audio, wav_base64

FAST = {"nfe_step": 4, "max_retries": 0}  # the quality gate has its own tests below


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus"])
def test_every_output_format_decodes_to_stated_rate_and_duration(worker, fmt):
    out = run(worker, text="Hello there, world.", seed=1, output_format=fmt)
    assert "error" not in out, out
    wave, sr = decode_b64_audio(out["audio_base64"])
    assert sr == out["sample_rate"] == 24000
    tolerance = 0.002 if fmt in ("wav", "flac") else 0.08
    assert abs(len(wave) / sr - out["duration"]) <= tolerance
    assert out["format"] == fmt and out["content_type"].startswith("audio/")


def test_pcm_output_is_s16le_of_stated_duration(worker):
    out = run(worker, text="Hello there, world.", seed=1, output_format="pcm")
    raw = base64.b64decode(out["audio_base64"])
    assert len(raw) % 2 == 0
    assert abs(len(raw) / 2 / out["sample_rate"] - out["duration"]) < 1e-3


def test_result_fields_and_timing(worker):
    out = run(worker, text="Timing fields please.", seed=3)
    for key in ("audio_base64", "sample_rate", "duration", "seed", "format", "timing", "model"):
        assert key in out
    assert out["model"] == "tiny" and out["seed"] == 3
    wave, sr = decode_b64_audio(out["audio_base64"])
    assert sr == out["sample_rate"] and abs(len(wave) / sr - out["duration"]) < 1e-4
    timing = out["timing"]
    # sampling, vocoding and encoding always do real work; the reference may be a cache hit
    assert timing["synthesis_ms"] > 0 and timing["vocoding_ms"] > 0 and timing["encoding_ms"] > 0
    # the stages run one after another inside the job: together they fit in its total (each rounded to 0.01)
    stages = {k: v for k, v in timing.items() if k.endswith("_ms") and k != "total_ms"}
    assert {"reference_ms", "synthesis_ms", "vocoding_ms", "encoding_ms"} <= set(stages), timing
    assert sum(stages.values()) <= timing["total_ms"] + 0.01 * len(stages), timing
    # real-time factor: seconds of work per second of audio
    assert timing["rtf"] == pytest.approx(timing["total_ms"] / 1000 / out["duration"], rel=1e-3, abs=1e-4)


def test_same_seed_same_samples_and_different_seed_differs(worker):
    a = run(worker, text="Deterministic output.", seed=1234)
    b = run(worker, text="Deterministic output.", seed=1234)
    c = run(worker, text="Deterministic output.", seed=4321)
    assert a["audio_base64"] == b["audio_base64"]
    wa, _ = decode_b64_audio(a["audio_base64"])
    wc, _ = decode_b64_audio(c["audio_base64"])
    assert len(wa) == len(wc) and not np.array_equal(wa, wc)


def test_seed_is_random_when_absent_and_always_returned(worker):
    seeds = {run(worker, text="Random seeds.")["seed"] for _ in range(3)}
    assert len(seeds) > 1 and all(isinstance(s, int) for s in seeds)


def test_long_text_gives_several_chunks_and_one_continuous_output(worker):
    sentence = "This is a fairly ordinary sentence that keeps the model busy for a while."
    text = " ".join(f"{sentence} Number {i}." for i in range(8))
    out = run(worker, text=text, seed=7, cross_fade_duration=0.15)
    assert out["chunks"] >= 3
    wave, sr = decode_b64_audio(out["audio_base64"])
    # one stream, roughly the sum of the chunks (minus the cross-fades)
    short = run(worker, text=f"{sentence} Number 0.", seed=7)
    assert len(wave) / sr > 3 * short["duration"]
    assert abs(len(wave) / sr - out["duration"]) < 0.002


def test_reference_by_base64_is_prepared_once_and_reused(worker):
    """A reference sent again is served from the cache: the same prepared object, with the mel spectrogram
    the sampler computed for the first job, so neither decoding nor the mel is paid twice."""
    from f5_worker.schema import parse_job

    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    # a reference no other test sends, so the first job below is the one that prepares it
    ref = wav_base64(wave * np.float32(0.97), sr, fmt="FLAC")
    job = dict(text="Cloned voice.", seed=5, ref_audio_base64=ref, ref_text=DEFAULT_VOICE_TEXT)
    first = run(worker, **job)
    assert "error" not in first, first
    prepared = worker.synthesis.reference_for(parse_job({**FAST, **job}))
    (mel,) = prepared.mels.values()  # the object the first job sampled with: one model, one mel
    second = run(worker, **job)
    assert first["audio_base64"] == second["audio_base64"]
    again = worker.synthesis.reference_for(parse_job({**FAST, **job}))
    assert again is prepared and [m is mel for m in again.mels.values()] == [True]
    # the cache key is the content: other audio (or other text for it) is prepared on its own
    other = worker.synthesis.reference_for(parse_job({**FAST, **job, "ref_text": "Some call me nature."}))
    assert other is not prepared and not other.mels


def test_base64_payloads_are_never_logged(worker, caplog):
    ref = wav_base64(*sf.read(DEFAULT_VOICE_WAV, dtype="float32"))
    with caplog.at_level("DEBUG"):
        run(worker, text="Quiet logs.", seed=5, ref_audio_base64=ref, ref_text=DEFAULT_VOICE_TEXT)
        worker.handle({"text": "x", "ref_audio_base64": ref[:5000] + "!", "ref_text": "y"})
    assert "job" in caplog.text and "<" in caplog.text
    assert ref[:64] not in caplog.text


def test_a_reference_with_more_speech_than_is_kept_is_refused(worker):
    """Clipped speech would no longer match ref_text: refused, as upload_voice does."""
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    long = np.concatenate([wave, wave, wave])  # ~16 s of speech
    text = " ".join([DEFAULT_VOICE_TEXT] * 3)
    out = run(worker, text="Trim me.", seed=1, ref_audio_base64=wav_base64(long, sr), ref_text=text)
    assert re.match(r"ref_audio_base64: holds 1\d\.\d s of speech; a reference keeps at most 12 s", out["error"]), out


def test_silence_around_a_reference_is_trimmed_and_nothing_clipped(worker):
    """~15 s, of which ~5 s speech: the silence goes, the speech stays whole (no clipping to warn of)."""
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    quiet = np.zeros(int(5 * sr), dtype=np.float32)
    for padded in (np.concatenate([wave, quiet, quiet]), np.concatenate([quiet, quiet, wave])):
        out = run(worker, text="Trim me.", seed=1, ref_audio_base64=wav_base64(padded, sr), ref_text=DEFAULT_VOICE_TEXT)
        assert "error" not in out, out
        assert out["warnings"] == []
    kept = worker.references.from_bytes(base64.b64decode(wav_base64(np.concatenate([quiet, quiet, wave]), sr)),
                                        DEFAULT_VOICE_TEXT, "ref_audio_base64", 0.1)
    assert kept.duration == pytest.approx(4.98, abs=0.1)  # all of the speech (8 s of silence before it)


def test_a_quiet_reference_keeps_its_loudness_and_remove_silence_keeps_the_speech(worker):
    """Speech comes back at the reference's loudness; pauses are found before that, at the level sampled
    (with a reference at -54 dBFS the -50 dBFS threshold used to take the whole output away)."""
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    quiet = wave * (0.002 / np.sqrt(np.mean(wave**2)))
    job = dict(text="Quiet but present.", seed=2, max_retries=0, ref_audio_base64=wav_base64(quiet, sr),
               ref_text=DEFAULT_VOICE_TEXT)
    plain, trimmed = run(worker, **job), run(worker, **job, remove_silence=True)
    audio_plain, _ = decode_b64_audio(plain["audio_base64"])
    audio_trimmed, _ = decode_b64_audio(trimmed["audio_base64"])
    assert trimmed["duration"] > 0.5 * plain["duration"]
    assert np.sqrt(np.mean(audio_plain**2)) < 0.01 and np.sqrt(np.mean(audio_trimmed**2)) < 0.01


def silence_b64(seconds=2.0):
    return wav_base64(np.zeros(int(seconds * 24000), np.float32), 24000)


def too_long_b64():
    return wav_base64(np.full(int(130 * 8000), 0.1, np.float32), 8000)


@pytest.mark.parametrize(
    "make_audio,pattern",
    [(silence_b64, "silent or shorter"), (too_long_b64, "long; the limit is 120 s")],
)
def test_bad_reference_audio(worker, make_audio, pattern):
    out = run(worker, text="hi", ref_audio_base64=make_audio(), ref_text="some words")
    assert out["error"].startswith("ref_audio_base64: ") and pattern in out["error"], out


def test_oversized_result_refused_before_synthesis(worker):
    text = "word " * 990  # ~5000 chars: minutes of wav, far over the inline limit
    out = run(worker, text=text, output_format="wav")
    assert out["error"].startswith("text: the result would be about")
    assert "inline limit" in out["error"]


def test_health(worker):
    out = worker.handle({"action": "health"})
    assert out["status"] == "ok" and out["model"] == "tiny" and out["device"] == "cpu"
    assert out["versions"]["torch"] and out["versions"]["f5-tts"] and out["versions"]["runpod"]
    assert out["load_seconds"] > 0
    assert out["aligner"] in ("sphinx", "ctc", "estimate")


def assert_word_invariants(words, text, duration):
    """Every input word once, in order, exactly as written; times ordered and inside the audio."""
    assert [w["word"] for w in words] == text.split()
    previous_start = 0.0
    for w in words:
        assert 0.0 <= w["start"] <= w["end"] <= duration
        assert w["start"] >= previous_start
        previous_start = w["start"]
        assert 0.0 <= w["confidence"] <= 1.0
        assert text[w["char_start"]:w["char_end"]] == w["word"]


def test_synthesize_returns_aligned_words_chars_and_captions(worker):
    text = "Dr. Smith paid $40 on 3 May, didn't he?"
    out = run(worker, text=text, seed=11, char_timings=True, caption_formats=["srt", "vtt", "ass", "csv", "json"])
    assert "error" not in out, out
    assert_word_invariants(out["words"], text, out["duration"])
    assert "".join(c["char"] for c in out["chars"]) == text.replace(" ", "")
    assert set(out["captions"]) == {"srt", "vtt", "ass", "csv", "json"}
    assert out["aligner"] in ("sphinx", "ctc", "estimate")
    assert out["timing"]["alignment_ms"] > 0 and "captions_ms" in out["timing"]
    assert set(out["quality"]) == {"alignment_score", "retries", "flagged_words"}


def test_timings_can_be_turned_off(worker):
    out = run(worker, text="No timings here.", seed=1, word_timings=False, caption_formats=[])
    assert "words" not in out and "captions" not in out and "quality" not in out
    assert "alignment_ms" not in out["timing"]


def test_quality_gate_resamples_audio_that_does_not_match_the_text(worker):
    """The tiny model speaks noise, which never matches the text: the gate must retry, then keep the best."""
    job = dict(text="Hello world, this is a test.", seed=5, nfe_step=4, max_retries=2)
    out = worker.handle(job)
    assert out["quality"]["retries"] == 2
    assert out["quality"]["alignment_score"] < 0.6 and out["quality"]["flagged_words"]
    assert out["timing"]["retries_ms"] > 0
    again = worker.handle(job)  # retry seeds derive from the job's seed: the request is reproducible
    assert again["audio_base64"] == out["audio_base64"] and again["seed"] == out["seed"]
    # the returned seed reproduces the returned audio on its own
    alone = worker.handle({**job, "seed": out["seed"], "max_retries": 0})
    assert alone["audio_base64"] == out["audio_base64"]


def test_matching_speech_passes_the_gate_without_retries(worker):
    """Aligning the f5-tts example speech with its own transcript scores high (the gate's other side)."""
    from f5_worker.alignment.quality import align_audio, alignment_mismatch

    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    alignment = align_audio(worker.aligner, wave, sr, DEFAULT_VOICE_TEXT)
    assert not alignment_mismatch(alignment) and alignment.score > 0.8


def tone_b64(seconds: float) -> str:
    """A steady 220 Hz tone: loud from its first sample to its last, so nothing of it is trimmed."""
    t = np.arange(int(seconds * 24000)) / 24000
    return wav_base64((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000)


@pytest.mark.parametrize("seconds, ref_text", [(10.0, "a"), (8.0, "Hi there."), (4.0, "Hey you.")])
def test_a_transcript_far_too_short_for_its_reference_is_refused(worker, seconds, ref_text):
    """F5-TTS paces the speech it makes by the reference's bytes per second: "a" for 10 s of reference made
    "Hello there." last 122 s. Refused wherever a clip comes with its transcript, the field named."""
    size = len(ref_text.encode())
    said = rf"is {size} bytes? of text for {seconds:.0f}\.\d s of reference audio, under 3 a second: it cannot be all"
    out = run(worker, text="Hello there.", ref_audio_base64=tone_b64(seconds), ref_text=ref_text)
    assert re.match(rf"^ref_text: {said}", out["error"]), out
    segments = [{"text": "Hello there."}, {"ref_audio_base64": tone_b64(seconds), "ref_text": ref_text, "text": "Hi."}]
    out = run(worker, segments=segments)
    assert re.match(rf"^segments\.1\.ref_text: {said}", out["error"]), out


def test_a_sparse_transcript_at_the_floor_is_taken_and_bounds_the_length(worker):
    """3.5 s of reference for 12 bytes of transcript (3.4 a second, slow but possible): taken, and the speech
    made with it is at most as slow as that pace."""
    out = run(worker, text="Hello there.", seed=1, ref_audio_base64=tone_b64(3.5), ref_text="Hello again.")
    assert "error" not in out, out
    assert out["duration"] <= len(b"Hello there.") / 3.0
