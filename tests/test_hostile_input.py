"""Hostile input through the real handler: audio bombs, absurd samples, huge and forged echoes, anything.

Each known attack that runs in-process is here; the same attacks over the local HTTP API, and
the log they leave, are in test_runpod_local.py, and damaged voice metadata in test_voices.py.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import inspect
import io
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, REPO_ROOT
from f5_worker import schema
from f5_worker.worker import Worker

REF_B64 = base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()).decode()
FIELDS = sorted({name for model in schema.ACTIONS.values() for name in model.model_fields})
NON_FIELDS = {"input", "action", "storage", "output", "internal"}


def names_a_field(error: str) -> bool:
    """``<field>: <problem>``: a request field (an item of a list one as ``field.N``), or one of the
    error kinds that are not fields, or the job's own unknown field (its name escaped and cut)."""
    field, sep, problem = error.partition(": ")
    if not sep or not problem:
        return False
    return error.endswith(": unknown field") or field.split(".")[0] in {*FIELDS, *NON_FIELDS}


@pytest.fixture(scope="module")
def hostile_worker(worker, tiny_settings, tmp_path_factory):
    """A Worker on the session's tiny models with its own volume and no bucket (voices stay in a temp dir)."""
    volume = tmp_path_factory.mktemp("hostile-volume")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY", "BUCKET_NAME"):
            mp.delenv(key, raising=False)
        return Worker(dataclasses.replace(tiny_settings, network_volume_path=volume, aligner="estimate"),
                      worker.models)


def wav_b64(wave: np.ndarray, rate: int = 24000, subtype: str = "PCM_16") -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype=subtype)
    return base64.b64encode(buf.getvalue()).decode()


def silence_flac(seconds: int, rate: int = 384000) -> bytes:
    """The memory bomb: seconds of silence at 384 kHz, a few kB a minute of FLAC, 1.5 MB a second decoded."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, 1, format="FLAC", subtype="PCM_16") as f:
        second = np.zeros(rate, dtype=np.int16)
        for _ in range(seconds):
            f.write(second)
    return buf.getvalue()


# --- memory: bounded by what a job may produce, not by what its input declares -----------------------

MEMORY_PROGRAM = textwrap.dedent("""
    import base64, io, json, re, sys
    import numpy as np
    import soundfile as sf
    from f5_worker.actions.align import AlignAction
    from f5_worker.alignment.selection import load_aligner
    from f5_worker.errors import JobError
    from f5_worker.fetch import DownloadLimits
    from f5_worker.job import Job
    from f5_worker.schema import parse_job
    from f5_worker.tts.reference import ReferencePreparer
    from f5_worker.voices import VoiceStore
    from f5_worker.storage.local import LocalStorage
    from f5_worker.errors import free_host_memory as return_freed_memory
    exec(sys.argv[1])  # silence_flac, wav_b64: this file's own, without importing its heavy imports

    def status(key):
        return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

    align = AlignAction(load_aligner("auto", device="cpu", processes=0), DownloadLimits(50 << 20, 30))
    refs = ReferencePreparer(max_input_seconds=120, keep_seconds=12)
    voices = VoiceStore(LocalStorage(sys.argv[2]), max_input_seconds=120)
    jobs = {
        "align": lambda data: align(parse_job({"action": "align", "text": "Hello there.",
                                               "audio_base64": base64.b64encode(data).decode()}), Job()),
        "reference": lambda data: refs.from_bytes(data, "Hello there.", "ref_audio_base64", 0.1),
        "upload_voice": lambda data: voices.save("bomb", data, ref_text="Hello there.", overwrite=True),
    }
    bombs = {"align": silence_flac(60), "reference": silence_flac(60), "upload_voice": silence_flac(60)}
    speech = base64.b64decode(wav_b64(np.random.default_rng(0).normal(0, 0.1, 48000 * 2).astype("float32"), 48000))
    for job in jobs.values():  # warm: the baseline is a worker that has served each kind of job
        try:
            job(speech)
        except JobError:
            pass
    out = {}
    for name, job in jobs.items():
        return_freed_memory()
        baseline = status("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the peak from here on
        try:
            job(bombs[name])
        except JobError as exc:  # silence makes no reference or voice: refused after decoding
            pass
        peak = status("VmHWM") - baseline
        return_freed_memory()
        out[name] = {"peak": peak, "after": status("VmRSS") - baseline}
    print(json.dumps(out))
""")


def test_audio_bombs_stay_within_their_memory_bound(tmp_path):
    """A small FLAC declaring minutes at 384 kHz took gigabytes (8.8 GB peak for 1,790 s).

    The bombs here are scaled down to stay fast (120 s and 110 s at 384 kHz, 170 kB of FLAC): before,
    they took 0.48 GB (align) and about as much for a reference; now decoding holds at most
    seconds x min(rate, 48 kHz; 16 kHz for align) x 4 bytes (docs/api.md, "Memory"), and the job's
    whole peak above the warm baseline stays within 64 MB. The baseline is this process's own (measured
    with /proc's resettable peak), so other tests do not count.
    """
    helpers = "\n\n".join(inspect.getsource(f) for f in (wav_b64, silence_flac))
    result = subprocess.run([sys.executable, "-c", MEMORY_PROGRAM, helpers, str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(measured)
    for name, mem in measured.items():
        assert mem["peak"] < 64 << 20, (name, measured)
        assert mem["after"] < 32 << 20, (name, measured)  # given back after the job


# --- absurd values, and errors that name the right field ------------------------------------------


def test_a_reference_with_absurd_samples_is_refused_not_turned_into_noise(hostile_worker):
    """A float WAV of ±1e38 was accepted and gave 3.7 s of constant -1.0, reported as success."""
    rng = np.random.default_rng(0)
    wave = np.sign(rng.standard_normal(24000 * 3)).astype(np.float32) * np.float32(1e38)
    out = hostile_worker.handle({"text": "Hello there.", "nfe_step": 4, "ref_text": "Hello there.",
                                 "ref_audio_base64": wav_b64(wave, subtype="FLOAT")})
    assert out.get("error", "").startswith("ref_audio_base64: audio has samples of 1e+38, beyond full scale"), out


def test_a_one_sample_upload_blames_the_audio(hostile_worker):
    """A one-sample upload once said ``ref_text: is 13 bytes of text for 0.1 s of reference audio``."""
    out = hostile_worker.handle({"action": "upload_voice", "name": "one", "ref_text": "Hello there.",
                                 "audio_base64": wav_b64(np.array([0.5], dtype=np.float32))})
    assert out.get("error", "").startswith("audio_base64: "), out


# --- streamed items: each one that RunPod takes -----------------------------------------------------

RUNPOD_STREAM_ITEM_BYTES = 1_000_000  # RunPod drops a streamed item over this: its audio never reaches the client
# per format: one token said longer than any item holds, a way of writing one each, and pauses that add up
STREAMED_HOSTILE = {  # format: (text, the long token, seconds of pause)
    "wav": ("My account is {}, thank you. [pause:10s][pause:10s] Bye now.", "9081726354" * 5, 20.0),
    "pcm": ("Code {} is yours. <break time=\"10s\"/> [pause:6s] Bye.", "-".join(["427"] * 12), 16.0),
    "flac": ("Now say {} please. [pause:9s]<break time='9s'/> Done.", "qwertyuiop" * 25, 18.0),
    "mp3": ("Go to {} today. " + "[pause:10s]" * 5 + " Bye now.", "https://example.com/" + "path/" * 20, 50.0),
    "opus": ("Rates rose {} again. " + "[pause:10s] " * 5 + "Bye now.", "%" * 30, 50.0),
}


@pytest.fixture(scope="module")
def streaming_hostile_worker(hostile_worker):
    return Worker(dataclasses.replace(hostile_worker.settings, streaming=True), hostile_worker.models)


@pytest.mark.parametrize("fmt", sorted(STREAMED_HOSTILE))
def test_no_streamed_item_is_over_runpods_1_mb_in_any_format(streaming_hostile_worker, fmt):
    """Pieces were cut between tokens only, and adjacent pauses made one item: a 1,500-letter word was one
    item of 9.3 MB, 60 digits one of 1.9 MB, "[pause:10s][pause:10s]" one of 1.3 MB, each dropped by RunPod.
    Here each format gets a token of its own said longer than one of its items holds (as mp3 or opus, upstream's
    chunk: far from 1 MB, but the promise is the same), cut into parts each in one item, and pauses that add
    up to more than one item holds, shared among items."""
    from f5_worker import audio
    from f5_worker.tts.chunking import max_piece_seconds

    template, token, pause_s = STREAMED_HOSTILE[fmt]
    text = template.format(token)
    items = streaming_hostile_worker.handle({"text": text, "stream": True, "output_format": fmt, "char_timings": True,
                                             "seed": 5, **CHEAP})
    assert isinstance(items, list), items
    *pieces, done = items
    assert done["done"] and [i["seq"] for i in items] == list(range(len(items)))
    for item in items:  # as runpod-python posts it
        size = len(json.dumps({"output": item}, ensure_ascii=False).encode())
        assert size <= RUNPOD_STREAM_ITEM_BYTES, (fmt, item["seq"], size)
    most = max_piece_seconds(audio.BYTES_PER_SAMPLE[fmt], 24000)
    assert all(p["duration"] <= most + 0.01 for p in pieces), [p["duration"] for p in pieces]
    pauses = [p["pause"] for p in pieces if "pause" in p]
    assert len(pauses) >= 2 and sum(pauses) == pytest.approx(pause_s)
    # the token in parts, each in one item, and each of its characters timed once, in order
    at = text.index(token)
    parts = [w for p in pieces for w in p.get("words", []) if at <= w["char_start"] < at + len(token)]
    assert len(parts) >= 2 and "".join(w["word"] for w in parts) == text[at:parts[-1]["char_end"]]
    assert parts[-1]["char_end"] >= at + len(token)
    assert [w["char_start"] for w in parts[1:]] == [w["char_end"] for w in parts[:-1]]
    chars = [c["char_start"] for p in pieces for c in p.get("chars", []) if at <= c["char_start"] < at + len(token)]
    assert chars == list(range(at, at + len(token)))


# --- the hostile-input harness: anything a job can say ----------------------------------------------

HOSTILE_TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "\n", "\x00", "a\nINFO forged", "..", "../../etc/passwd", "/abs", "x" * 5000, "é" * 70,
     "data:audio/wav;base64,UklGRg==", "http://127.0.0.1:1/a.wav", "ftp://example.com/a", "nan", "1e309"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)
BAD_AUDIO = [
    base64.b64encode(b"not audio").decode(),
    wav_b64(np.array([0.5], dtype=np.float32)),  # one sample
    wav_b64(np.full(2400, 1e38, dtype=np.float32), subtype="FLOAT"),  # absurd values
    wav_b64(np.zeros(24000, dtype=np.float32)),  # silence
    wav_b64(np.ones(2400, dtype=np.float32) * 3000, subtype="FLOAT"),  # integer-range floats
    base64.b64encode(silence_flac(3, rate=384000)).decode(),
    base64.b64encode(DEFAULT_VOICE_WAV.read_bytes()[:2000]).decode(),  # truncated
]
AUDIO = st.sampled_from(BAD_AUDIO)
AUDIO_FIELDS = {"audio_base64", "ref_audio_base64"}
CHEAP = {"nfe_step": 4, "max_retries": 0}  # a synthesis the draw happens to make valid stays quick


@st.composite
def jobs(draw):
    action = draw(st.sampled_from(sorted(schema.ACTIONS)) | HOSTILE_TEXT)
    job = {"action": action} if draw(st.booleans()) or action != "synthesize" else {}
    names = draw(st.lists(st.sampled_from(FIELDS) | HOSTILE_TEXT, max_size=5, unique=True))
    for name in names:
        job[name] = draw(AUDIO if name in AUDIO_FIELDS and draw(st.booleans()) else VALUES)
    if job.get("action", "synthesize") == "synthesize":
        job.update(CHEAP)
    return job


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(job=jobs())
@example(job={"action": "upload_voice", "name": "a", "audio_base64": BAD_AUDIO[1]})
@example(job={"text": "Hello.", "ref_text": "Hello.", "ref_audio_base64": BAD_AUDIO[2], **CHEAP})
@example(job={"action": "align", "text": "Hello.", "audio_base64": BAD_AUDIO[5]})
@example(job={"action": "align", "text": "Hello.", "audio_base64": BAD_AUDIO[6]})
@example(job={"action": "get_voice", "name": "a\nb"})
@example(job={"voice": "a\x00b", "text": "Hi.", **CHEAP})
@example(job={"text": "[voice:../../x] Hi [pause:99999999999999999999s]", **CHEAP})
@example(job={"text": "Hi [voice:" + "v" * 5000 + "] there", **CHEAP})
@example(job={"text": "[pause:9s] [pause:0.0000001s] <break time='1ms'/> Hi.", "duration": 1e-9, **CHEAP})
@example(job={"segments": [{"text": "[pause:1s]"}, {"voice": "\x00", "text": "x"}], **CHEAP})
@example(job={"segments": [{"text": "a"}], "duration": 1200, **CHEAP})
@example(job={"segments": [None, 3, "x"], **CHEAP})
def test_any_job_gets_a_result_or_an_error_naming_its_field(hostile_worker, job):
    """Through the real handler, whatever a job says, the answer is a result or
    ``<field>: <problem>``: never an internal error, never a traceback, never a huge echo."""
    out = hostile_worker.handle(job, job_id="hostile")
    assert isinstance(out, dict)
    if "error" in out:
        error = out["error"]
        assert names_a_field(error) and not error.startswith("internal:"), (job, error)
        assert "Traceback" not in error and "object at 0x" not in error and len(error) < 1000, (job, error)


def test_a_good_job_is_served_after_the_harness(hostile_worker):
    out = hostile_worker.handle({"text": "Still here.", "nfe_step": 4, "seed": 1, "max_retries": 0})
    assert "error" not in out and out["duration"] > 0
    out = hostile_worker.handle({"action": "align", "text": DEFAULT_VOICE_TEXT, "audio_base64": REF_B64})
    assert [w["word"] for w in out["words"]] == DEFAULT_VOICE_TEXT.split()


@contextlib.contextmanager
def worker_log(name: str):
    """A logger ``name`` writing to a string in the worker's own log format (runpod_handler.py configures it
    with logs.configure): yields the logger and the string's stream."""
    import logging

    from f5_worker import logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.SafeFormatter(logs.LOG_FORMAT))
    log = logging.getLogger(name)
    log.addHandler(handler)
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)


def test_no_logged_value_can_start_a_log_line_not_even_in_a_traceback():
    """The worker's log format (runpod_handler.py) as configured, with a job's text in a message
    and in an exception's message, the way ``log.exception`` writes an internal error."""

    from f5_worker import logs

    with worker_log("f5_worker.test_hostile") as (log, stream):
        forged = "\n2026-01-01 00:00:00,000 INFO f5_worker.worker: FORGED\x00\r\u2028"
        log.warning("job %s: voice=%s", "j1", forged)
        try:
            raise ValueError(f"bad{forged}")
        except ValueError:
            log.exception("job j2 failed")
    lines = stream.getvalue().splitlines()
    starts = [line for line in lines if not line.startswith(logs.CONTINUATION)]
    assert len(starts) == 2 and all(" f5_worker.test_hostile: job j" in line for line in starts), lines
    assert "\x00" not in stream.getvalue() and "\u2028" not in stream.getvalue()
    assert any("FORGED\\x00\\r\\u2028" in line for line in lines)


# --- transcripts fit their reference, scripts are bounded --------------------------------------------


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=1, max_value=400))
@example(size=1)
@example(size=14)
@example(size=15)
def test_transcripts_of_every_length_against_their_reference(hostile_worker, size):
    """A transcript of any length for 4.6 s of reference: refused naming ``ref_text`` unless it is at least 3 and
    at most 60 bytes a second, and then the speech made is no slower than 3 bytes a second (docs/api.md)."""
    slowest, fastest = 3.0, 60.0
    t = np.arange(int(4.6 * 24000)) / 24000
    clip = wav_b64((0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32))
    ref_text = ("Some words here " * 30)[:size].strip() or "x"
    out = hostile_worker.handle({"text": "Hello there.", "ref_audio_base64": clip, "ref_text": ref_text,
                                 "word_timings": False, "caption_formats": [], **CHEAP})
    rate = len(ref_text.encode()) / 4.65  # the kept reference: 50 ms of silence after the tone
    if slowest <= rate <= fastest:
        assert "error" not in out, out
        assert out["duration"] <= len(b"Hello there.") / slowest
    else:
        assert out.get("error", "").startswith("ref_text: is "), out


def test_a_script_of_more_parts_than_allowed_is_refused_before_any_sampling(hostile_worker):
    """"a[pause:0s]" × 454 took 160 s of sampling and 4 GB on the CPU: parts are bounded as segments are."""
    limit = hostile_worker.settings.max_script_parts
    for job in ({"text": "a<break time='0s'/>" * (limit + 1)},
                {"segments": [{"text": "a [pause:0s] b [pause:0s] c [pause:0s] d [pause:0s] e"}] * (limit // 5 + 1)}):
        out = hostile_worker.handle({**job, **CHEAP})
        field = "text" if "text" in job else "segments"
        assert out["error"].startswith(f"{field}: ") and "(MAX_SCRIPT_PARTS)" in out["error"], out


# --- a long alignment beside health: the worker answers while sphinx decodes ------------------------------------

def test_health_answers_promptly_while_a_long_alignment_runs(worker):
    """pocketsphinx holds the interpreter lock for a whole decode, and over 30 s of audio its first pass is one
    decode of all of it: aligned in the worker process (the CPU default was ALIGN_PROCESSES=0), a 30-minute
    recording kept ``health`` waiting 63 s, and runpod's heartbeat and job loop with it. ``health`` is asked
    again and again, from the event loop as runpod asks for jobs, while about three minutes of speech are
    aligned; no two answers may be a fifth of the alignment apart (the first pass alone took over a third
    of it in the worker process, and the loop could not even ask meanwhile)."""
    import asyncio
    import time

    from f5_worker.audio import resample

    wave, rate = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    repeats = 30
    wave = np.tile(np.concatenate([resample(wave, rate, 16000), np.zeros(4800, np.float32)]), repeats)
    text = " ".join([DEFAULT_VOICE_TEXT] * repeats)
    job = {"action": "align", "audio_base64": wav_b64(wave, 16000), "text": text, "caption_formats": []}

    async def scenario():
        started = time.monotonic()
        align = asyncio.create_task(worker.handle_async(job, job_id="long-align"))
        answered = [started]  # when each health call answered; a frozen loop could not even ask the next
        while not align.done():
            health = await worker.handle_async({"action": "health"}, job_id="health")
            answered.append(time.monotonic())
            assert health["status"] == "ok"
            await asyncio.sleep(0.2)
        return await align, time.monotonic() - started, [b - a for a, b in zip(answered, answered[1:])]

    result, seconds, gaps = asyncio.run(scenario())
    assert len(result["words"]) == len(text.split()) and result["timings_estimated"] is False
    assert len(gaps) >= 5 and max(gaps) < seconds / 5, (max(gaps), seconds, len(gaps))


# --- credentials in URLs: no setting, job, error or log line hands a URL's password on --------------------------

SECRET = "s3cretPASS"
CONFIG_VARIABLES = sorted(set(re.findall(r"""["']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)["']""",
                                         (REPO_ROOT / "f5_worker" / "config.py").read_text())))
URLS_WITH_CREDENTIALS = [
    f"http://AKIAUSER:{SECRET}@host:9/bucket",
    f"https://{SECRET}@s3.example.com",  # a token as the user name
    f"HTTPS://:{SECRET}@host/",  # no user name; the scheme in capitals
    f"http://user:{SECRET}@evil@host:9/",  # two @: urllib takes the last
    f"https://user name:{SECRET}@host/",  # urllib keeps a space in a user name
]


@pytest.mark.parametrize("url", URLS_WITH_CREDENTIALS)
@pytest.mark.parametrize("name", CONFIG_VARIABLES)
def test_no_setting_keeps_a_password_given_in_a_url(monkeypatch, name, url):
    """Every variable config.py reads, set to a URL with a password: either the worker refuses to start, naming
    the variable without the password, or the password is nowhere in its settings (so ``health`` cannot show it).
    With the bucket's keys set, the endpoint's URL used to go into ``health`` and every storage error as it was."""
    from f5_worker import config

    for variable in CONFIG_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("BUCKET_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", "key-secret")
    monkeypatch.setenv("BUCKET_NAME", "voices")
    monkeypatch.setenv(name, url)
    try:
        read = (config.get_settings(), config.StorageSettings.from_env())
    except config.SettingsError as exc:
        assert SECRET not in str(exc) and str(exc).startswith(f"{name} must not hold a user name or password"), exc
        assert "***@" in str(exc)
        return
    assert SECRET not in repr(read)


def test_a_registry_file_entry_with_credentials_is_refused_without_them(tiny_settings, tmp_path):
    from f5_worker.config import SettingsError
    from f5_worker.tts.registry import ModelRegistry

    registry = tmp_path / "models.json"
    registry.write_text(json.dumps({"fr": {"architecture": "F5TTS_Base", "license": "none",
                                           "checkpoint": f"https://user:{SECRET}@models.example.com/fr.pt"}}))
    with pytest.raises(SettingsError) as err:
        ModelRegistry.from_settings(dataclasses.replace(tiny_settings, model_registry_file=registry))
    assert str(err.value) == (f"MODEL_REGISTRY_FILE {registry}: entry 1 ('fr'): checkpoint must not hold a user name "
                              "or password in a URL (https://***@models.example.com/fr.pt); remove the part before '@'")


@pytest.mark.parametrize("job", [
    {"text": "Hello.", "ref_audio_url": f"https://user:{SECRET}@example.com/a.wav", "ref_text": "Hi."},
    {"action": "align", "text": "Hello.", "audio_url": f"https://user:{SECRET}@example.com/a.wav"},
    {"action": "upload_voice", "name": "anna", "audio_url": f"http://{SECRET}@127.0.0.1:9/a.wav", "ref_text": "Hi."},
    {"segments": [{"text": "Hi.", "ref_audio_url": f"https://u:{SECRET}@example.com/b.wav", "ref_text": "Hi."}]},
    {"text": "Hello.", "ref_audio_url": f"https://user:{SECRET}@example.com:99999/a.wav", "ref_text": "Hi."},  # a bad port too
    {"text": "Hello.", "ref_audio_url": f"ftp://user:{SECRET}@example.com/a.wav", "ref_text": "Hi."},  # a scheme not taken
    {"text": "Hello.", "ref_audio_url": f"https://user:{SECRET * 40}@example.com/a.wav", "ref_text": "Hi."},
    {"text": "Hello.", "ref_audio_url": f"https://a user:{SECRET}@example.com/a.wav", "ref_text": "Hi."},  # longer than an echo
])
def test_a_password_in_a_jobs_url_reaches_neither_its_error_nor_the_log(hostile_worker, caplog, job):
    """The job is refused (a URL with credentials, a bad port, a scheme) without quoting them; its log line, which
    names the URL, used to write the password into the worker's log."""
    with caplog.at_level("DEBUG"):
        out = hostile_worker.handle(job, job_id="secret-url")
    assert "error" in out and names_a_field(out["error"]) and not out["error"].startswith("internal"), out
    assert SECRET not in out["error"] and SECRET[:6] not in caplog.text, caplog.text[-2000:]
    assert "secret-url" in caplog.text  # the job was logged, its URL with it


def test_what_the_worker_says_about_any_url_hides_its_credentials():
    """Wherever a URL reaches a message (a hub's address in a download error, a storage error, an exception's
    text in the log), its user information is ``***``: the log's format, a job's error and a start-up error."""
    import logging

    from f5_worker import logs
    from f5_worker.config import SettingsError
    from f5_worker.errors import JobError
    from f5_worker.tts.weights import ModelUnavailableError

    url = f"http://AKIAUSER:{SECRET}@mirror.example.com/owner/repo/resolve/main/model.pt"
    with worker_log("f5_worker.test_credentials") as (log, stream):
        log.warning("could not read %s", url)
        try:
            raise OSError(f"connection refused by {url}")
        except OSError:
            log.exception("download failed")
    assert SECRET not in stream.getvalue() and stream.getvalue().count("http://***@mirror.example.com") == 2
    try:  # a record another handler formatted first: logging caches its traceback text with the record
        raise OSError(f"connection refused by {url}")
    except OSError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "failed", (), sys.exc_info())
    assert SECRET in logging.Formatter().format(record)
    assert SECRET not in logs.SafeFormatter(logs.LOG_FORMAT).format(record)
    for error in (JobError("storage", f"could not read voice 'anna' at {url}"),
                  ModelUnavailableError(f"fr checkpoint could not be downloaded ({url})"),
                  SettingsError(f"MODELS: entry 1: {url}")):
        assert SECRET not in str(error) and "http://***@mirror.example.com/owner" in str(error), error
