"""The bodies of the HTTP server's streamed answers (docs/http.md): a speech's audio as its pieces are made
(``stream_format: "audio"``, chunked), OpenAI's speech events (``"sse"``), and a native streamed job's items
as server-sent events; and the response that sends one, freeing the job's slot and stopping its job the
moment it ends, whether sent whole, left by its client or cut by a stopping server.

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

import asyncio
import base64
import io
import json
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

import numpy as np
import soundfile as sf
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from f5_worker.openai_speech import from_native_error

log = logging.getLogger(__name__)

UNKNOWN_LENGTH = 0xFFFFFFFF  # a streamed WAV header's RIFF and data lengths
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


def speech_events(items: Iterator[dict], fmt: str, events: bool, granularities: tuple[str, ...],
                  hop_length: Callable[[str], int]) -> Iterator[bytes]:
    """A streamed speech job's items (audio as 16-bit ``pcm``) as the body of a speech answer: the audio in
    ``fmt`` (``events`` False), or OpenAI's events: ``speech.audio.delta`` with that audio, a
    ``speech.audio.timestamps`` after each piece with words where ``granularities`` asks, and
    ``speech.audio.done`` with the usage. One bytes value per item, empty where a piece gives no bytes yet,
    so the first is there as soon as the first piece is made.

    A job that fails before its first piece raises the ApiError to answer instead of a stream; one that fails
    later ends the events with an error event (OpenAI's SDK raises it), or an audio body with StreamBroken.
    ``hop_length``: the model's mel hop, for the usage's frames."""
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
            said = len(item.get("normalized_text", ""))
            frames = round(item["duration"] * item["sample_rate"] / hop_length(item["model"]))
            yield (sse(_delta(tail)) if tail else b"") + sse({
                "type": "speech.audio.done",
                "usage": {"input_tokens": said, "output_tokens": frames, "total_tokens": said + frames}})
        else:
            if stream is None:
                stream = AudioStream(fmt, item["sample_rate"])
            chunk = stream.add(np.frombuffer(base64.b64decode(item["audio_base64"]), dtype="<i2"))
            if not events:
                yield chunk
                continue
            out = sse(_delta(chunk)) if chunk else b""
            if granularities and "pause" not in item:
                out += sse(_timestamps(item))
            yield out


def _delta(audio: bytes) -> dict:
    return {"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode("ascii")}


def _timestamps(item: dict) -> dict:
    """A piece's timings, as the native item gives them: times in the whole stream, characters in the input."""
    event = {"type": "speech.audio.timestamps", "offset": item["offset"], "duration": item["duration"],
             "text_start": item["text_start"], "text_end": item["text_end"]}
    event.update({name: item[name] for name in ("words", "chars") if name in item})
    return event


class JobStream(StreamingResponse):
    """A streamed job's answer: ``first`` (pulled before the answer started, so that a refused job answered
    an error instead), then the rest of ``job``'s items, each as ``to_bytes`` makes it. The moment it ends
    (sent whole, left by its client, which Starlette sees and cancels the body for, cut by a stopping
    server, which cancels it, or broken by its job) ``on_end`` runs and ``job`` is closed, which stops it
    where it is not done (stopping.made_in_thread)."""

    def __init__(self, first: bytes, job: AsyncGenerator, to_bytes: Callable[[object], bytes],
                 on_end: Callable[[], None], **kwargs):
        async def body() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for item in job:
                if chunk := to_bytes(item):
                    yield chunk

        super().__init__(body(), **kwargs)
        self.job, self.on_end = job, on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamBroken as exc:  # returned unfinished, the answer's connection is closed: the body is cut
            log.warning("a streamed answer was cut: %s", exc)
        except asyncio.CancelledError:  # uvicorn's grace period is over: the same, without a traceback in the log
            log.warning("a streamed answer was cut: the server is stopping")
        finally:
            self.on_end()
            await self.body_iterator.aclose()
            await self.job.aclose()
