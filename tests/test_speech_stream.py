"""A streamed speech's body (f5_worker/speech_stream.py), as every front door sends it: a speech's pieces encoded
one after another as one file, whose bytes joined decode with soundfile to the speech's length, and OpenAI's
speech events made from a streamed job's items. tests/test_http_server.py sends them over real HTTP."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

from f5_worker.delivery import inline_size
from f5_worker.openai_speech import ApiError
from f5_worker.speech_stream import MAX_DELTA_BYTES, AudioStream, StreamBroken, speech_events, sse
from f5_worker.tts.chunking import STREAM_ITEM_BYTES, TIMINGS_BYTES_PER_S, max_piece_seconds

RATE = 24000
# pieces as a stream sends them: whole milliseconds, of unlike lengths, the last much shorter than a frame
PIECE_SECONDS = (0.731, 1.402, 0.004, 2.25)
MP3_SLACK_S = 0.1  # a streamed mp3 decodes this much longer at most: the encoder's delay, the last frame's padding


def pieces() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for seconds in PIECE_SECONDS:
        t = np.arange(round(seconds * RATE)) / RATE
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
        out.append((wave * 32767).astype(np.int16))
    return out


def decode(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "pcm":
        return sf.read(io.BytesIO(data), format="RAW", subtype="PCM_16", samplerate=RATE, channels=1,
                       endian="LITTLE", dtype="int16")[0]
    wave, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == RATE
    return wave


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "opus", "flac"])
def test_the_pieces_joined_decode_to_the_whole_speech(fmt):
    stream = AudioStream(fmt, RATE)
    sent = [stream.add(piece) for piece in pieces()] + [stream.end()]
    whole = np.concatenate(pieces())
    decoded = decode(b"".join(sent), fmt)
    if fmt == "mp3":  # frames concatenate; the Info header that would trim the encoder's delay comes too late
        assert len(whole) <= len(decoded) <= len(whole) + MP3_SLACK_S * RATE
    else:
        assert len(decoded) == len(whole)
    if fmt in ("pcm", "wav", "flac"):  # lossless
        assert np.array_equal(decoded, whole)
    if fmt != "flac":  # sent as they come: every piece but the last few milliseconds gives bytes at once
        assert all(sent[:2]), [len(s) for s in sent]
    else:  # flac keeps its length in its header: the whole file at the end
        assert not any(sent[:-1]) and sent[-1][:4] == b"fLaC"


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus"])
def test_where_a_click_is_heard_in_the_stream_against_where_it_was_made(fmt):
    """What docs/http.md says of the timestamps events against a stream's audio: exact as wav (and pcm, flac)
    and opus; as mp3 all the extra is before the speech, so each word sounds that much after its time."""
    click = np.zeros(RATE, np.int16)
    click[RATE // 2:RATE // 2 + 48] = 20000
    stream = AudioStream(fmt, RATE)
    heard = decode(stream.add(click) + stream.end(), fmt)
    lead = (int(np.argmax(np.abs(heard))) - RATE // 2) / RATE
    if fmt == "mp3":
        assert 0.03 < lead < MP3_SLACK_S
    else:
        assert abs(lead) < 0.002


def test_a_wav_stream_says_its_length_is_unknown():
    head = AudioStream("wav", RATE).add(np.zeros(10, np.int16))[:44]
    assert head[:4] == b"RIFF" and head[4:8] == b"\xff\xff\xff\xff" and head[40:44] == b"\xff\xff\xff\xff"


def item(seq: int, samples: np.ndarray, offset: float, **more) -> dict:
    return {"seq": seq, "audio_base64": base64.b64encode(samples.tobytes()).decode(), "format": "pcm",
            "sample_rate": RATE, "offset": offset, "duration": len(samples) / RATE, **more}


def job_items() -> list[dict]:
    a, b = pieces()[:2]
    words = [{"word": "Hello", "start": 0.1, "end": 0.5, "confidence": 0.9, "char_start": 0, "char_end": 5}]
    return [item(0, a, 0.0, text_start=0, text_end=5, words=words),
            item(1, np.zeros(240, np.int16), len(a) / RATE, pause=0.01),
            item(2, b, len(a) / RATE + 0.01, text_start=6, text_end=11, words=[]),
            {"seq": 3, "done": True, "duration": (len(a) + 240 + len(b)) / RATE, "sample_rate": RATE,
             "model": "tiny", "normalized_text": "Hello there"}]


def failure(exc: Exception) -> dict:
    """The worker's failure policy as the front doors pass it (Worker.failure), without its log line."""
    return {"error": f"internal: {type(exc).__name__}: {exc}"}


def events(body: list[bytes]) -> list[dict]:
    text = b"".join(body).decode()
    assert text.endswith("\n\n")
    return [json.loads(block.removeprefix("data: ")) for block in text.split("\n\n") if block]


def test_openai_events_carry_the_audio_the_timings_and_the_usage():
    body = list(speech_events(iter(job_items()), "wav", True, ("word",), lambda model: 256, failure))
    assert len(body) == 6  # one per event, the first there as soon as the first piece is made
    got = events(body)
    assert [e["type"] for e in got] == ["speech.audio.delta", "speech.audio.timestamps", "speech.audio.delta",
                                        "speech.audio.delta", "speech.audio.timestamps", "speech.audio.done"]
    assert all(set(e) == {"type", "audio"} for e in got if e["type"] == "speech.audio.delta")
    assert got[1] == {"type": "speech.audio.timestamps", "offset": 0.0, "duration": job_items()[0]["duration"],
                      "text_start": 0, "text_end": 5, "words": job_items()[0]["words"]}
    audio = b"".join(base64.b64decode(e["audio"]) for e in got if e["type"] == "speech.audio.delta")
    assert len(decode(audio, "wav")) * 1.0 / RATE == pytest.approx(job_items()[-1]["duration"])
    frames = round(job_items()[-1]["duration"] * RATE / 256)
    assert got[-1] == {"type": "speech.audio.done",
                       "usage": {"input_tokens": 11, "output_tokens": frames, "total_tokens": 11 + frames}}


def test_a_job_refused_before_its_first_piece_raises_the_error_to_answer():
    with pytest.raises(ApiError) as refused:
        list(speech_events(iter([{"error": "text: must not be empty"}]), "mp3", True, (), lambda m: 256, failure))
    assert refused.value.status == 400 and refused.value.param == "input"
    assert refused.value.message == "input: must not be empty"


def test_a_job_that_fails_after_its_first_piece_ends_the_events_with_an_error_or_cuts_the_audio():
    failing = job_items()[:1] + [{"error": "internal: RuntimeError: boom"}]
    got = events(list(speech_events(iter(failing), "wav", True, (), lambda m: 256, failure)))
    assert got[-1] == {"type": "error", "error": {"message": "internal: RuntimeError: boom", "type": "server_error",
                                                  "param": None, "code": None}}
    with pytest.raises(StreamBroken):
        list(speech_events(iter(failing), "wav", False, (), lambda m: 256, failure))


def test_a_failure_of_the_bodys_own_is_answered_as_a_jobs_failure_is():
    """An encoder that fails (here on a piece whose 16-bit audio has an odd number of bytes) before the first
    piece is sent raises the 500 to answer, in OpenAI's form; after it, the events end with an error event, or
    the audio is cut. It came out of the HTTP route as a plain-text 500 or a cut stream, with a traceback."""
    broken = item(1, np.zeros(1, np.int16), 0.731)
    broken["audio_base64"] = base64.b64encode(b"\x00\x01\x02").decode()
    with pytest.raises(ApiError) as refused:
        list(speech_events(iter([broken]), "mp3", True, (), lambda m: 256, failure))
    assert refused.value.status == 500 and refused.value.kind == "server_error"
    assert refused.value.message.startswith("internal: ValueError: ")
    failing = job_items()[:1] + [broken]
    got = events(list(speech_events(iter(failing), "wav", True, (), lambda m: 256, failure)))
    assert got[0]["type"] == "speech.audio.delta" and got[-1]["type"] == "error"
    assert got[-1]["error"]["message"].startswith("internal: ValueError: ")
    with pytest.raises(StreamBroken):
        list(speech_events(iter(failing), "mp3", False, (), lambda m: 256, failure))


def test_a_format_that_cannot_be_written_at_the_pieces_rate_is_refused_by_its_field():
    """A model may speak at any rate from 8 to 192 kHz; opus takes five of them: the first piece's rate
    refuses the answer in the speech request's words, before any byte, not as a failure."""
    at_44k = [{**piece, "sample_rate": 44100} for piece in job_items()]
    for events_asked in (True, False):
        with pytest.raises(ApiError) as refused:
            list(speech_events(iter(at_44k), "opus", events_asked, (), lambda m: 256, failure))
        assert refused.value.status == 400 and refused.value.param == "response_format"
        assert refused.value.message.startswith("response_format: opus cannot be written at 44100 Hz")
    mp3 = b"".join(speech_events(iter(at_44k), "mp3", False, (), lambda m: 256, failure))
    assert sf.info(io.BytesIO(mp3)).samplerate == 44100


def test_an_event_is_one_data_line():
    assert sse({"text": "two\nlines"}) == b'data: {"text": "two\\nlines"}\n\n'


@pytest.mark.parametrize("fmt", ["pcm", "wav", "flac"])
def test_every_event_fits_in_one_of_runpods_streamed_items(fmt):
    """On a queue endpoint each event is one item of text, which RunPod takes up to 1 MB as JSON (a string's
    quotes escaped): pieces of the most speech an item carries, with timings of the most bytes they may take,
    and flac's whole file at the end, cut into deltas of at most MAX_DELTA_BYTES."""
    seconds = max_piece_seconds(2, RATE)
    rng = np.random.default_rng(1)
    waves = [(rng.uniform(-0.5, 0.5, round(seconds * RATE)) * 32767).astype(np.int16) for _ in range(3)]
    word = {"word": "ab", "start": 0.0, "end": 0.1, "confidence": 0.5, "char_start": 0, "char_end": 2}
    words = [word] * int(seconds * TIMINGS_BYTES_PER_S / inline_size(word))
    items = [item(n, w, n * seconds, text_start=0, text_end=2, words=words) for n, w in enumerate(waves)]
    items.append({"seq": 3, "done": True, "duration": 3 * seconds, "sample_rate": RATE, "model": "tiny"})
    body = [e for e in speech_events(iter(items), fmt, True, ("word",), lambda m: 256, failure) if e]
    assert all(inline_size(event.decode()) < STREAM_ITEM_BYTES for event in body), max(map(len, body))
    deltas = [e for e in events(body) if e["type"] == "speech.audio.delta"]
    assert all(len(base64.b64decode(e["audio"])) <= MAX_DELTA_BYTES for e in deltas)
    if fmt == "flac":  # 40 s of noise: several MB, in several deltas
        assert len(deltas) > 2
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert np.array_equal(decode(audio, fmt), np.concatenate(waves))
