"""A streamed speech's body, as every front door sends it (docs/http.md): the audio as its pieces are made
(``stream_format: "audio"``), or OpenAI's speech events (``"sse"``: ``speech.audio.delta``,
``speech.audio.timestamps``, ``speech.audio.done``, an ``error`` event for a failure after the first piece).
The HTTP server sends these bytes as its answer's body (http_streaming.py); on a queue endpoint an
``openai_route`` job yields each as one item of text, as RunPod's worker-vllm yields its streamed chat
completions (actions/openai_routes.py). Nothing here knows HTTP.

A streamed job makes its speech piece by piece (synthesis/streaming.py). Each piece's audio comes here as
raw 16-bit samples and leaves as the next bytes of *one* file in the format asked, so that the bytes joined
are a file that decodes as a whole (each piece's own file, as RunPod's ``/stream`` items carry it, would
repeat its header):

- ``pcm``: the samples, concatenated.
- ``wav``: a header whose two lengths say "unknown" (0xFFFFFFFF, as streamed WAV is written), then the samples.
- ``mp3``: one encoder (libsndfile's LAME) over the whole stream, each piece's frames as it gives them.
  Constant bitrate, so that a reader estimating the length of an MP3 that has no Info header (libsndfile
  does) gets it right: that header can only be written once the length is known, so the stream has a silent
  frame in its place, and it decodes a little longer than the speech (the encoder's delay and the last
  frame's padding, under 0.1 s).
- ``opus``: one Ogg Opus stream, its pages as they are made; it decodes to the speech's exact length.
- ``flac``: a FLAC file keeps its length in its header, and libsndfile cannot read one without it: the file
  is sent whole once the job ends.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable, Iterator

import numpy as np
import soundfile as sf

from f5_worker.audio import check_encodable
from f5_worker.errors import JobError
from f5_worker.openai_speech import SPEECH_FIELD_NAMES, from_job_error, from_native_error, refusal
from f5_worker.tts.chunking import STREAM_ITEM_BYTES, STREAM_ITEM_SHARE

UNKNOWN_LENGTH = 0xFFFFFFFF  # a streamed WAV header's RIFF and data lengths
# the most audio bytes one speech.audio.delta carries: its base64 (4/3 as many) keeps the event, and the
# queue's item that holds it, under RunPod's 1 MB per streamed item (a flac stream's whole file comes at the end)
MAX_DELTA_BYTES = int(STREAM_ITEM_BYTES * STREAM_ITEM_SHARE * 3 / 4)
# (soundfile format, subtype, options) of the formats encoded as the pieces come
_ENCODERS = {
    "mp3": ("MP3", "MPEG_LAYER_III", {"bitrate_mode": "CONSTANT", "compression_level": 0.5}),  # 80 kb/s at 24 kHz
    "opus": ("OGG", "OPUS", {}),
}


class StreamBroken(Exception):
    """A streamed audio answer failed after it started: its body is left incomplete, which is how HTTP says so."""


class _Sink(io.RawIOBase):
    """Where libsndfile writes a streamed file: what it writes past the bytes already taken is kept until
    ``take``; a rewrite of bytes already sent (a header completed at the end) is dropped."""

    def __init__(self):
        self._pending = bytearray()  # the bytes from ``_sent`` on
        self._sent = 0
        self._pos = 0

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._sent + len(self._pending)}[whence]
        self._pos = base + offset
        return self._pos

    def write(self, data) -> int:
        data = bytes(data)
        start, end = self._pos - self._sent, self._pos - self._sent + len(data)
        if end > 0:
            kept = data[max(0, -start):]
            start = max(start, 0)
            self._pending.extend(b"\0" * max(0, start + len(kept) - len(self._pending)))
            self._pending[start:start + len(kept)] = kept
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        start = max(0, self._pos - self._sent)
        data = bytes(self._pending[start:] if size < 0 else self._pending[start:start + size])
        self._pos += len(data)
        return data

    def take(self) -> bytes:
        data = bytes(self._pending)
        self._sent += len(data)
        self._pending.clear()
        return data


class AudioStream:
    """One speech's audio in ``fmt``, encoded as its pieces come: ``add`` gives the bytes to send for a
    piece (possibly none yet), ``end`` the rest."""

    def __init__(self, fmt: str, sample_rate: int):
        self.fmt, self.sample_rate = fmt, sample_rate
        self._header_sent = False
        self._held: list[np.ndarray] = []  # flac: the pieces, encoded at the end
        self._sink = _Sink()
        self._file = None
        if fmt in _ENCODERS:
            sf_format, subtype, options = _ENCODERS[fmt]
            self._file = sf.SoundFile(self._sink, "w", sample_rate, 1, subtype, format=sf_format, **options)

    def add(self, samples: np.ndarray) -> bytes:
        """The bytes for the next piece's ``samples`` (16-bit)."""
        if self._file is not None:
            self._file.write(samples)
            return self._sink.take()
        if self.fmt == "flac":
            self._held.append(samples)
            return b""
        return self._header() + samples.astype("<i2").tobytes()

    def end(self) -> bytes:
        """The stream's last bytes: what the encoder still held (mp3, opus), or the whole file (flac)."""
        if self._file is not None:
            self._file.close()
            return self._sink.take()
        if self.fmt == "flac":
            out = io.BytesIO()
            sf.write(out, np.concatenate(self._held or [np.zeros(0, np.int16)]), self.sample_rate, format="FLAC",
                     subtype="PCM_16")
            return out.getvalue()
        return self._header()

    def _header(self) -> bytes:
        """wav: its header, the first time only; pcm has none."""
        if self.fmt != "wav" or self._header_sent:
            return b""
        self._header_sent = True
        rate = self.sample_rate
        return (b"RIFF" + struct.pack("<I", UNKNOWN_LENGTH) + b"WAVE"
                + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
                + b"data" + struct.pack("<I", UNKNOWN_LENGTH))


def sse(data: dict) -> bytes:
    """One server-sent event: ``data: <JSON>`` and a blank line (JSON holds no raw newline)."""
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def speech_body(items: Callable[[dict], Iterator[dict]], native: dict, events: bool,
                granularities: tuple[str, ...], hop_length: Callable[[str], int],
                failure: Callable[[Exception], dict]) -> Iterator[bytes]:
    """A speech request's streamed body, on every front door: ``native`` (its synthesize job, from
    openai_speech.speech_input) run as a streamed job by ``items`` (Worker.items: parse, dispatch, error
    policy), its pieces made as 16-bit pcm and re-encoded as one file in the format asked (speech_events).
    ``failure``: the worker's failure policy, for a failure of the body's own making (Worker.failure)."""
    streamed = {**native, "stream": True, "output_format": "pcm", "output": "inline"}
    return speech_events(items(streamed), native["output_format"], events, granularities, hop_length, failure)


def speech_events(items: Iterator[dict], fmt: str, events: bool, granularities: tuple[str, ...],
                  hop_length: Callable[[str], int], failure: Callable[[Exception], dict]) -> Iterator[bytes]:
    """A streamed speech job's items (audio as 16-bit ``pcm``) as the body of a speech answer: the audio in
    ``fmt`` (``events`` False), or OpenAI's events: ``speech.audio.delta`` with that audio, a
    ``speech.audio.timestamps`` after each piece with words where ``granularities`` asks, and
    ``speech.audio.done`` with the usage. A bytes value per event (per item's audio, without ``events``),
    an empty one where a piece gives no bytes yet, so the first is there as soon as the first piece is made;
    no event's audio is over MAX_DELTA_BYTES, so each value fits in one of RunPod's streamed items.

    A job that fails before its first piece raises the ApiError to answer instead of a stream; one that fails
    later ends the events with an error event (OpenAI's SDK raises it), or an audio body with StreamBroken.
    So does a failure of the body's own (an encoder's), as ``failure`` (the worker's policy) says it: it
    once came out of the HTTP route as a plain-text 500, or a cut stream, with a traceback.
    ``hop_length``: the model's mel hop, for the usage's frames."""
    started = False
    body = _speech_events(items, fmt, events, granularities, hop_length)
    try:
        for chunk in body:
            started = True
            yield chunk
    except StreamBroken:
        raise
    except Exception as exc:  # noqa: BLE001 - answered as a job's failure is, its traceback logged by ``failure``
        error = refusal(exc, failure)
        if not started:
            raise error from None
        if not events:
            raise StreamBroken(error.message) from None
        yield sse({"type": "error", **error.openai_body()})
    finally:
        body.close()


def _speech_events(items: Iterator[dict], fmt: str, events: bool, granularities: tuple[str, ...],
                   hop_length: Callable[[str], int]) -> Iterator[bytes]:
    """speech_events' bytes, without its answer to a failure of its own."""
    stream: AudioStream | None = None
    for item in items:  # to the end, where the job logs that it is done
        if "error" in item:
            error = from_native_error(item["error"])
            if stream is None:
                raise error
            if not events:
                raise StreamBroken(error.message)
            yield sse({"type": "error", **error.openai_body()})
        elif item.get("done"):
            tail = stream.end() if stream is not None else b""
            if not events:
                yield tail
                continue
            yield from _deltas(tail)
            said = len(item.get("normalized_text", ""))
            frames = round(item["duration"] * item["sample_rate"] / hop_length(item["model"]))
            yield sse({"type": "speech.audio.done",
                       "usage": {"input_tokens": said, "output_tokens": frames, "total_tokens": said + frames}})
        else:
            if stream is None:
                try:  # the piece's rate is the model's: a format may not take it (wav, flac and pcm take any)
                    check_encodable(fmt, item["sample_rate"])
                except JobError as exc:
                    raise from_job_error(exc, SPEECH_FIELD_NAMES) from None
                stream = AudioStream(fmt, item["sample_rate"])
            chunk = stream.add(np.frombuffer(base64.b64decode(item["audio_base64"]), dtype="<i2"))
            if not events:
                yield chunk
                continue
            timed = bool(granularities) and "pause" not in item
            if not chunk and not timed:
                yield b""
            yield from _deltas(chunk)
            if timed:
                yield sse(_timestamps(item))


def _deltas(audio: bytes) -> Iterator[bytes]:
    """``audio`` as speech.audio.delta events of at most MAX_DELTA_BYTES each (none for no audio)."""
    for start in range(0, len(audio), MAX_DELTA_BYTES):
        yield sse(_delta(audio[start:start + MAX_DELTA_BYTES]))


def _delta(audio: bytes) -> dict:
    return {"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode("ascii")}


def _timestamps(item: dict) -> dict:
    """A piece's timings, as the native item gives them: times in the whole stream, characters in the input."""
    event = {"type": "speech.audio.timestamps", "offset": item["offset"], "duration": item["duration"],
             "text_start": item["text_start"], "text_end": item["text_end"]}
    event.update({name: item[name] for name in ("words", "chars") if name in item})
    return event
