"""Voices and result delivery through ``Worker.handle``, on the tiny models, against real SeaweedFS."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import threading
import time
from collections import Counter

import numpy as np
import pytest
import requests
import soundfile as sf
from test_fetch import serve_bytes, server  # noqa: F401  (loopback HTTP server fixture)

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV
from f5_worker.config import StorageSettings
from f5_worker.delivery import ResultFile, finish_output, inline_size, upload_result
from f5_worker.errors import JobError
from f5_worker.storage.stores import Stores
from f5_worker.worker import Worker

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()


@pytest.fixture
def make_worker(worker, tiny_settings, tmp_path):
    """A Worker on the session's tiny models, with storage read from the current environment."""
    volume = tmp_path / "volume"
    volume.mkdir()

    def make(**overrides) -> Worker:
        settings = dataclasses.replace(tiny_settings, network_volume_path=volume, **overrides)
        return Worker(settings, worker.models)

    make.volume = volume
    return make


@pytest.fixture(params=["volume", "bucket"])
def voice_worker(request, make_worker, no_bucket_env):
    if request.param == "bucket":
        request.getfixturevalue("bucket_env")
    w = make_worker()
    assert w.stores.voices.kind == ("bucket" if request.param == "bucket" else "local")
    return w


def upload(w, name="anna", **fields):
    job = {"action": "upload_voice", "name": name, "audio_base64": REF_B64, "ref_text": DEFAULT_VOICE_TEXT}
    job.update(fields)
    return w.handle({k: v for k, v in job.items() if v is not None})


def synth(w, job_id: str | None = None, **fields):
    job = {"text": "Hello there, this is a test.", "seed": 1, "nfe_step": 4}
    job.update(fields)
    return w.handle(job, job_id=job_id or f"job-{time.monotonic_ns()}")


def cached_versions(w) -> dict[str, str]:
    """The voice versions the worker holds in memory."""
    return {name: voice.info.version for name, voice in w.voices._voices.items()}


def decode(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float32")


# --- voice actions ---------------------------------------------------------------------------------

def test_voice_lifecycle_and_synthesis_with_stored_voice(voice_worker):
    w = voice_worker
    assert w.handle({"action": "list_voices"})["voices"] == []
    out = upload(w)
    assert "error" not in out, out
    assert out["voice"]["name"] == "anna" and out["voice"]["ref_text"] == DEFAULT_VOICE_TEXT
    assert out["storage"] == w.stores.voices.kind

    listed = w.handle({"action": "list_voices"})
    assert listed["count"] == 1
    entry = listed["voices"][0]
    assert {"name", "duration", "ref_text", "size", "created"} <= set(entry)
    assert 4.0 < entry["duration"] < 5.4 and entry["size"] > 100_000

    got = w.handle({"action": "get_voice", "name": "anna", "include_audio": True})
    wave, rate = decode(base64.b64decode(got["audio_base64"]))
    assert rate == 24000 and abs(len(wave) / rate - entry["duration"]) < 0.01

    first = synth(w, voice="anna")
    assert "error" not in first, first
    wave, rate = decode(base64.b64decode(first["audio_base64"]))
    assert rate == 24000 and abs(len(wave) / rate - first["duration"]) < 0.01
    assert cached_versions(w) == {"anna": out["voice"]["version"]}
    again = synth(w, voice="anna")
    assert again["audio_base64"] == first["audio_base64"]  # same seed, same cached reference

    assert w.handle({"action": "delete_voice", "name": "anna"})["deleted"] == "anna"
    assert synth(w, voice="anna") == {"error": "voice: no voice named 'anna'"}
    assert w.handle({"action": "get_voice", "name": "anna"}) == {"error": "name: no voice named 'anna'"}


def test_replaced_voice_is_used_at_once(voice_worker):
    w = voice_worker
    upload(w)
    before = synth(w, voice="anna")
    silence_then_tone = np.concatenate([np.zeros(2400), 0.3 * np.sin(np.arange(72000) * 2 * np.pi * 220 / 24000)])
    buf = io.BytesIO()
    sf.write(buf, silence_then_tone.astype(np.float32), 24000, format="WAV")
    other = base64.b64encode(buf.getvalue()).decode()
    assert "already exists" in upload(w, audio_base64=other)["error"]
    replaced = upload(w, audio_base64=other, ref_text="A plain tone.", overwrite=True)
    assert replaced["voice"]["duration"] == pytest.approx(3.05, abs=0.05)
    after = synth(w, voice="anna")
    assert after["audio_base64"] != before["audio_base64"]
    assert cached_versions(w)["anna"] == replaced["voice"]["version"]


@pytest.mark.parametrize("store", ["volume", "bucket"])
def test_a_job_reads_each_voice_once(request, make_worker, no_bucket_env, store):
    """A job of two stored voices reads each one's metadata once (one GET on a bucket), though its model, its
    language and its references all come from it, streamed or not; a later job reads it again (a voice
    replaced meanwhile is noticed) and its audio no more (cached per version). Counted at the real store."""
    if store == "bucket":
        request.getfixturevalue("bucket_env")
    w = make_worker(streaming=True)
    upload(w, "anna")
    upload(w, "bob", language="en")  # read for the language; anna keeps neither, so she is read for both
    storage = w.voices.storage
    gets: Counter = Counter()
    get = storage.get

    def counted(key: str) -> bytes:
        gets[key] += 1
        return get(key)

    storage.get = counted  # counts the reads; the store answers them
    script = [{"voice": "anna", "text": "Hello there."}, {"voice": "bob", "text": "Hi."},
              {"voice": "anna", "text": "Bye now."}]
    meta = {"voices/anna/voice.json": 1, "voices/bob/voice.json": 1}
    first = synth(w, text=None, segments=script, max_retries=0)
    assert "error" not in first and first["language"] == "en" and first["words"], first
    audio_keys = {k for k in gets if not k.endswith("voice.json")}
    assert gets == meta | dict.fromkeys(audio_keys, 1) and len(audio_keys) == 2, gets
    for job in ({"max_retries": 0}, {"max_retries": 0, "stream": True}):
        gets.clear()
        out = synth(w, text=None, segments=script, **job)
        assert "error" not in (out[-1] if isinstance(out, list) else out), out
        assert gets == meta, (job, gets)


@pytest.mark.parametrize("job, error", [
    ({"name": "../../etc/passwd"}, "name: must not contain path separators or '..'"),
    ({"name": "a" * 65}, "name: is 65 characters long; the limit is 64"),
    ({"name": "white space"}, "name: may only use letters"),
    ({"audio_base64": None}, "audio_url: give exactly one of audio_url or audio_base64"),
    ({"audio_url": "http://x.example/a.wav"}, "audio_url: give exactly one of audio_url or audio_base64"),
    ({"audio_base64": "not base64!"}, "audio_base64: not valid base64"),
    ({"audio_base64": base64.b64encode(b"just text, not audio").decode()}, "audio_base64: could not decode audio"),
    ({"overwrite": "maybe"}, "overwrite: "),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"name": "Default"}, "name: 'default' names F5-TTS's built-in voice in every job; choose another name"),
])
def test_bad_upload_requests(make_worker, no_bucket_env, job, error):
    w = make_worker()
    out = upload(w, **job)
    assert out["error"].startswith(error), out
    assert not list(make_worker.volume.rglob("*.wav"))


def test_bad_voice_names_on_every_action(make_worker, no_bucket_env):
    w = make_worker()
    for action in ("get_voice", "delete_voice"):
        assert w.handle({"action": action, "name": "../x"})["error"].startswith("name: ")
    assert synth(w, voice="../x")["error"].startswith("voice: must not contain")
    assert synth(w, voice="ghost")["error"] == "voice: no voice named 'ghost'"


def test_upload_from_url_only_under_opt_in(make_worker, no_bucket_env, server, monkeypatch):  # noqa: F811
    server.routes["/voice"] = serve_bytes(DEFAULT_VOICE_WAV.read_bytes())
    w = make_worker()
    monkeypatch.delenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", raising=False)
    refused = upload(w, audio_base64=None, audio_url=server.base + "/voice")
    assert refused["error"].startswith("audio_url: refusing to download from '127.0.0.1'")
    refused = synth(w, ref_audio_url=server.base + "/voice", ref_text=DEFAULT_VOICE_TEXT)
    assert refused["error"].startswith("ref_audio_url: refusing to download")
    monkeypatch.setenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", "true")
    out = upload(w, audio_base64=None, audio_url=server.base + "/voice")
    assert out["voice"]["duration"] > 4, out
    assert "error" not in synth(w, ref_audio_url=server.base + "/voice", ref_text=DEFAULT_VOICE_TEXT)


@pytest.mark.slow
def test_upload_without_ref_text_needs_asr(make_worker, no_bucket_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    w = make_worker(asr_model="openai/whisper-not-in-this-cache")
    out = upload(w, ref_text=None)
    assert out["error"].startswith("ref_text: not given, and the speech recognition model "
                                   "'openai/whisper-not-in-this-cache' is unavailable"), out
    assert w.handle({"action": "list_voices"})["voices"] == []


def test_concurrent_uploads_through_the_handler(voice_worker):
    w = voice_worker
    barrier = threading.Barrier(2)
    results = []

    def go(text):
        barrier.wait()
        results.append(upload(w, name="race", ref_text=text))

    threads = [threading.Thread(target=go, args=(t,)) for t in ("The first words of the clip.", "The second words of the clip.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if "voice" in r]
    failed = [r for r in results if "error" in r]
    assert len(ok) == 1 and len(failed) == 1, results
    assert "already exists" in failed[0]["error"]
    stored = w.handle({"action": "get_voice", "name": "race"})["voice"]
    assert stored["ref_text"] == ok[0]["voice"]["ref_text"] and stored["version"] == ok[0]["voice"]["version"]


# --- delivery ----------------------------------------------------------------------------------------

def test_output_bucket_urls_serve_the_audio(make_worker, bucket_env):
    w = make_worker()
    inline = synth(w, output="inline", output_format="flac", job_id="job-inline")
    out = synth(w, output="bucket", output_format="flac", job_id="job/../42")
    assert "error" not in out, out
    assert out["delivery"] == "bucket" and "audio_base64" not in out
    assert "/results/job_.._42/speech.flac" in out["audio_url"]  # the job id is made safe for a key
    response = requests.get(out["audio_url"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/flac"
    assert response.content == base64.b64decode(inline["audio_base64"])  # same seed: identical bytes
    wave, rate = decode(response.content)
    assert rate == 24000 and abs(len(wave) / rate - out["duration"]) < 0.01
    assert out["files"]["speech.flac"]["bytes"] == len(response.content)
    assert out["expires_in"] == 3600
    # captions, when the worker produces them, travel the same way
    assert set(out.get("caption_urls", {})) == set(inline.get("captions", {}))
    for fmt, url in out.get("caption_urls", {}).items():
        assert requests.get(url, timeout=10).text == inline["captions"][fmt]


def test_caption_files_uploaded_with_content_types(bucket_env):
    stores = Stores.from_env()
    captions = {
        "srt": "1\n00:00:00,000 --> 00:00:01,000\nHéllo\n",
        "vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nHéllo\n",
    }
    out = {"audio_base64": "UklGRg==", "captions": dict(captions), "words": [{"word": "Héllo", "start": 0, "end": 1}]}
    done = finish_output(out, planned="bucket", job_id="cap-1", stores=stores, max_inline_bytes=10_000_000,
                         audio_bytes=b"RIFF", audio_format="wav", audio_content_type="audio/wav")
    assert done["words"] and "captions" not in done and "audio_base64" not in done
    expected = {"srt": "application/x-subrip", "vtt": "text/vtt; charset=utf-8"}
    for fmt, url in done["caption_urls"].items():
        response = requests.get(url, timeout=10)
        assert response.headers["Content-Type"] == expected[fmt]
        assert response.content.decode("utf-8") == captions[fmt]
    assert requests.get(done["audio_url"], timeout=10).headers["Content-Type"] == "audio/wav"


def test_auto_goes_to_the_bucket_when_too_big_for_inline(make_worker, bucket_env):
    w = make_worker(max_inline_bytes=20_000)
    out = synth(w)  # output defaults to auto
    assert out["delivery"] == "bucket", out
    assert requests.get(out["audio_url"], timeout=10).headers["Content-Type"] == "audio/wav"
    refused = synth(w, output="inline")
    assert refused["error"].startswith("output: the result would be about"), refused
    assert "use output 'bucket' or 'auto'" in refused["error"]
    small = make_worker()
    assert synth(small)["delivery"] == "inline"


def low_estimate(monkeypatch) -> None:
    """The plan's audio estimate reads nothing, as an estimate that fell short would: the plan says inline."""
    from f5_worker import audio

    monkeypatch.setattr(audio, "estimated_encoded_bytes", lambda samples, fmt: 0)


def test_a_result_found_too_big_after_synthesis_goes_to_the_bucket(make_worker, bucket_env, monkeypatch):
    """The size is checked again on the real result: one the plan took for inline but too big for it is
    delivered through the bucket, never sent over RunPod's limit."""
    whole = synth(make_worker(), output_format="flac", job_id="whole")
    assert whole["delivery"] == "inline" and inline_size(whole) > 20_000
    low_estimate(monkeypatch)
    out = synth(make_worker(max_inline_bytes=20_000), output_format="flac", job_id="too-big")
    assert out.get("delivery") == "bucket" and "audio_base64" not in out, out.get("error", out.get("delivery"))
    assert requests.get(out["audio_url"], timeout=10).content == base64.b64decode(whole["audio_base64"])


def test_a_result_found_too_big_after_synthesis_without_a_bucket_is_refused(make_worker, no_bucket_env,
                                                                            monkeypatch):
    """With nowhere else to send it, a result over the inline limit is refused with the way out rather than
    handed to RunPod, which refuses outputs over its limit."""
    low_estimate(monkeypatch)
    out = synth(make_worker(max_inline_bytes=20_000), output_format="flac")
    assert re.fullmatch(r"text: the result is 0\.\d MB, over the 0\.0 MB inline limit; shorten the text or use "
                        r"output_format mp3/opus \(no bucket is configured for links\)", out.get("error", "")), \
        out.get("error", out.get("delivery"))


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_a_result_too_big_in_a_compressed_format_is_not_told_to_use_one(make_worker, no_bucket_env, monkeypatch,
                                                                        fmt):
    """"use output_format mp3/opus" was the way out offered to a job that already asked for mp3 (a 5000-character
    text with character timings and every caption format): the message names what is big instead."""
    job = dict(text="Some words to say here, and then some more. " * 8, output_format=fmt, max_retries=0,
               char_timings=True, caption_formats=["json", "srt", "vtt", "ass", "csv"])
    before = synth(make_worker(max_inline_bytes=60_000), **job)["error"]
    assert re.fullmatch(rf"text: the result would be about 0\.\d MB \(\d+ s of {fmt}, 0\.\d MB of them timings and "
                        r"captions\), over the 0\.1 MB inline limit; shorten the text or ask for fewer timings "
                        r"\(char_timings, caption_formats\) \(no bucket is configured for links\)", before), before
    low_estimate(monkeypatch)
    after = synth(make_worker(max_inline_bytes=20_000), output_format=fmt, text="Hello there, this is a test. " * 4,
                  max_retries=0)["error"]
    assert re.fullmatch(r"text: the result is 0\.\d MB, over the 0\.0 MB inline limit; shorten the text "
                        r"\(no bucket is configured for links\)", after), after


def test_without_a_bucket_big_results_are_refused_before_synthesis(make_worker, no_bucket_env):
    w = make_worker(max_inline_bytes=20_000)
    calls = []
    real = w.engine.synthesize_parts
    w.engine.synthesize_parts = lambda *a, **k: calls.append(1) or real(*a, **k)
    out = synth(w)
    assert out["error"].startswith("text: the result would be about"), out
    assert "no bucket is configured" in out["error"]
    assert synth(w, output="bucket")["error"].startswith("output: 'bucket' is not available: no bucket is configured")
    assert calls == []  # both refused before any synthesis
    assert w.handle({"action": "health"})["storage"]["results"] == "inline only"


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_result_too_big_with_its_timings_is_refused_before_synthesis(make_worker, no_bucket_env, fmt):
    """The pre-check counts words, characters and captions too: nothing is synthesised only to be dropped."""
    job = dict(text="Dr. Smith paid $42.50 on 3rd May, 2024; a b c d e f g h i j k l m n o p. " * 4,
               output_format=fmt, char_timings=True, caption_formats=["json", "srt", "vtt", "ass", "csv"],
               max_retries=0, max_chars_per_line=10)
    fits = synth(make_worker(), **job)
    assert fits["delivery"] == "inline", fits
    actual = inline_size(fits)
    timings = actual - len(fits["audio_base64"])
    assert timings > 40_000  # tens of kB of timings that the audio-only estimate left out
    w = make_worker(max_inline_bytes=actual - 1)  # the audio alone would fit; audio and timings do not
    calls = []
    real = w.engine.synthesize_parts
    w.engine.synthesize_parts = lambda *a, **k: calls.append(1) or real(*a, **k)
    out = synth(w, **job)
    assert out["error"].startswith("text: the result would be about"), out
    assert calls == []


def test_the_size_check_counts_the_words_as_said_not_as_written(make_worker):
    """Digits said one by one are ten words for one written: their normalized_words and normalized_chars
    are reported too, so the bound checked before synthesis counts the spoken text, not the written one."""
    from f5_worker.schema import SynthesizeRequest
    from f5_worker.timings import timing_bytes_bound

    job = dict(text="$7,777,777,777 12345678901234567890 " * 6, char_timings=True, max_retries=0)
    out = synth(make_worker(), **job)
    assert len(out["normalized_words"]) > 8 * len(out["words"]), out.get("error")
    reported = len(json.dumps({k: v for k, v in out.items() if k != "audio_base64"}).encode())
    request = SynthesizeRequest(**job)
    assert timing_bytes_bound(request.script_text, out["normalized_text"], request) >= reported
    assert timing_bytes_bound(request.script_text, request.script_text, request) < reported  # the old bound


@pytest.mark.slow
def test_bucket_outage_mid_job(make_worker, bucket_env, seaweed):
    """The bucket dies while a job synthesizes: clear error, result kept on the volume, worker serves on."""
    w = make_worker()
    assert "error" not in upload(w)
    assert w.handle({"action": "health"})["storage"]["bucket"]["writable"]
    real = w.engine.synthesize_parts

    def synthesize_while_the_bucket_dies(*args, **kwargs):
        seaweed.stop()
        return real(*args, **kwargs)

    w.engine.synthesize_parts = synthesize_while_the_bucket_dies
    try:
        started = time.monotonic()
        out = synth(w, voice="anna", output="bucket", job_id="outage-1")
        # a hang guard, not a speed claim: with the server gone, its connections are refused at once
        assert time.monotonic() - started < 120
        assert out["error"].startswith("output: could not upload the result (upload failed on bucket "), out
        assert seaweed.endpoint in out["error"]
        kept = make_worker.volume / "f5-worker" / "results" / "outage-1" / "speech.wav"
        assert str(kept.parent) in out["error"] and decode(kept.read_bytes())[1] == 24000
        w.engine.synthesize_parts = real

        # jobs that do not need the bucket keep working
        inline = synth(w, ref_audio_base64=REF_B64, ref_text=DEFAULT_VOICE_TEXT, output="inline")
        assert "error" not in inline and inline["delivery"] == "inline"
        assert "error" not in synth(w)  # default voice, auto, small
        health = w.handle({"action": "health"})
        assert health["status"] == "ok"
        assert not health["storage"]["bucket"]["reachable"] and seaweed.endpoint in health["storage"]["bucket"]["error"]
        # jobs that do need it fail clearly
        for job in ({"action": "list_voices"}, {"text": "Hi there.", "voice": "anna"}):
            err = w.handle(job)["error"]
            assert err.startswith("storage: could not ") and bucket_env["BUCKET_NAME"] in err, err
        # a worker that starts while the bucket is down starts anyway and says why
        fresh = make_worker()
        assert not fresh.handle({"action": "health"})["storage"]["bucket"]["writable"]
        assert "error" not in synth(fresh, output="inline")
    finally:
        w.engine.synthesize_parts = real
        seaweed.start()
    # back up: the stored voice is there again
    assert "error" not in synth(w, voice="anna", output="bucket")


def test_upload_result_failure_without_volume_is_still_clear(bucket_env, seaweed, tmp_path):
    stores = Stores(StorageSettings.from_env(network_volume_path=tmp_path / "absent"))
    with seaweed.stopped():
        with pytest.raises(JobError) as err:
            upload_result(stores, "j1", [ResultFile("speech.wav", b"RIFF", "audio/wav")])
    assert str(err.value).startswith("output: could not upload the result (upload failed on bucket")
    assert "network volume" not in str(err.value)


@pytest.mark.slow
def test_upload_without_ref_text_is_transcribed_once(make_worker, no_bucket_env, tmp_path, monkeypatch):
    """The real transformers pipeline, on a tiny random Whisper built offline: it runs once, at upload."""
    from tiny_whisper import make_tiny_whisper

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    w = make_worker(asr_model=str(make_tiny_whisper(tmp_path / "tiny-whisper")))
    out = upload(w, ref_text=None)
    assert "error" not in out, out
    voice = out["voice"]
    assert voice["ref_text_source"] == "asr" and voice["ref_text"].strip() == voice["ref_text"] != ""
    asr = w.voices.transcriber
    assert asr.loaded and asr.model == str(tmp_path / "tiny-whisper")
    assert w.handle({"action": "get_voice", "name": "anna"})["voice"]["ref_text"] == voice["ref_text"]
    assert "error" not in synth(w, voice="anna")
