"""Audio in and out: decode with soundfile (no ffmpeg), resample, trim, join, encode.

All waves inside the worker are float32 mono numpy arrays.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from f5_worker import stopping
from f5_worker.errors import JobError
from f5_worker.limits import OUTPUT_FORMATS

TARGET_SAMPLE_RATE = 24000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000  # what decoded audio may declare
MAX_CHANNELS = 32
DECODE_BLOCK_FRAMES = 1 << 16
# torchaudio's sinc resampler builds a (new/g) x (orig/g) kernel, g = gcd(orig, new): fine for real
# rates (44100 -> 24000 is 80 x 147) but 44101 Hz would take ~18 GB and a minute. Beyond this
# product the resampling goes to soxr, whose cost does not depend on the ratio.
SINC_KERNEL_LIMIT = 1_000_000
RESAMPLE_BLOCK_SECONDS = 5.0  # longer audio is resampled block by block (``resample``)
MAX_DECODE_RATE = 48000  # decoded audio above this rate is resampled to it while it is decoded
# Samples beyond full scale (±1.0) by more than this are a broken file, not loud audio: refused.
# Float files written with integer-range values (±32768) are within it, and are scaled to ±1.0.
MAX_SAMPLE_PEAK = 1e6

# (soundfile format, subtype, MIME type) per output format (limits.OUTPUT_FORMATS); pcm is raw s16le.
_ENCODINGS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
    "pcm": ("RAW", "PCM_16", "audio/L16"),
}

# Upper bounds on encoded bytes per sample, used to refuse an oversized result before synthesis.
BYTES_PER_SAMPLE = {"wav": 2.0, "flac": 2.0, "pcm": 2.0, "mp3": 0.5, "opus": 0.5}
# The only sample rates these encoders write (libsndfile's Opus and LAME); the others write any a model has.
ENCODER_RATES = {
    "opus": (8000, 12000, 16000, 24000, 48000),
    "mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
}


def content_type(fmt: str) -> str:
    return _ENCODINGS[fmt][2]


def decode_base64(data: str, field: str) -> bytes:
    """Strict base64 (a ``data:...;base64,`` prefix is accepted)."""
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        compact = "".join(data.split())  # line-wrapped, as the `base64` command writes it
        try:
            if compact == data:
                raise ValueError
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise JobError(field, "not valid base64") from None
    if not raw:
        raise JobError(field, "is empty")
    return raw


@dataclass(frozen=True)
class DecodedAudio:
    wave: np.ndarray  # mono float32 within ±1.0, at ``sample_rate``
    sample_rate: int  # the wave's: the source's, or ``max_rate`` when the source's was higher
    source_rate: int  # what the file declares


def decode(data: bytes, field: str, max_seconds: float | None = None, *,
           max_rate: int = MAX_DECODE_RATE) -> DecodedAudio:
    """Decode any format libsndfile knows (wav, flac, mp3, ogg/vorbis/opus...) to mono float32.

    Memory is bounded by what the job may use, not by what the file declares: a few hundred kB
    of FLAC can declare half an hour at 384 kHz (gigabytes once decoded). So, block by block,
    channels are mixed to mono, a rate above ``max_rate`` is resampled down to it (soxr's
    streaming resampler), and with ``max_seconds`` longer audio is refused after decoding at most
    that much. The result is at most ``max_seconds * min(rate, max_rate)`` samples (4 bytes each),
    and nothing larger is ever held: about 23 MB for a 120 s reference at 48 kHz, 115 MB for 30
    minutes to align at 16 kHz.

    Samples beyond full scale by orders of magnitude (``MAX_SAMPLE_PEAK``) are refused, and
    float audio a little or moderately beyond it is scaled to ±1.0: either would otherwise turn
    into inf in the loudness and mel computations and come out as noise reported as success.
    """
    if not data:
        raise JobError(field, "audio is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            sample_rate, channels, declared = int(f.samplerate), int(f.channels), int(f.frames)
            if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
                raise JobError(field, f"audio declares a sample rate of {sample_rate} Hz; "
                                      f"supported: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
            if not 1 <= channels <= MAX_CHANNELS:
                raise JobError(field, f"audio has {channels} channels; at most {MAX_CHANNELS} are supported")
            limit = None if max_seconds is None else int(max_seconds * sample_rate) + 1
            if limit is not None and 0 < limit < declared < 2**62:
                raise JobError(field, f"audio is {declared / sample_rate:.1f} s long; the limit is {max_seconds:g} s")
            out_rate = min(sample_rate, int(max_rate))
            out = _Collector(sample_rate, out_rate, declared if 0 < declared < 2**62 else None, limit)
            total, peak = 0, 0.0
            for block in f.blocks(blocksize=DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if stopping.is_stopped():  # decoding half an hour of compressed audio takes seconds
                    raise stopping.JobStopped("while decoding audio")
                mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float64).astype(np.float32)
                peak = max(peak, _peak(mono, field))
                out.add(mono)
                total += len(block)
                if limit is not None and total >= limit:  # the header undercounted, or could not count
                    raise JobError(field, f"audio is longer than {max_seconds:g} s, the limit")
            wave = out.finish()
    except (JobError, MemoryError, stopping.JobStopped):
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for junk input
        raise JobError(field, f"could not decode audio ({decode_problem(exc)})") from None
    if total == 0 or len(wave) == 0:
        raise JobError(field, "audio has no samples")
    if peak > 1.0:
        wave *= np.float32(1.0 / peak)  # in place (the source's peak; resampling may overshoot it a little)
        np.clip(wave, -1.0, 1.0, out=wave)
    return DecodedAudio(wave, out_rate, sample_rate)


def _peak(block: np.ndarray, field: str) -> float:
    """The block's largest magnitude; refuses NaN, infinities and absurd values."""
    if not len(block):
        return 0.0
    peak = float(max(block.max(), -block.min()))
    if not math.isfinite(peak):
        raise JobError(field, "audio contains invalid samples (NaN or infinite)")
    if peak > MAX_SAMPLE_PEAK:
        raise JobError(field, f"audio has samples of {peak:.3g}, beyond full scale (±1.0) by far more than "
                              f"{MAX_SAMPLE_PEAK:g} times: the file is damaged")
    return peak


class _Collector:
    """Decoded blocks gathered into one array, resampled on the way when the source's rate is above the
    output's, so neither the source-rate audio nor a second copy of the result is ever held."""

    def __init__(self, rate: int, out_rate: int, declared: int | None, limit: int | None):
        self.stream = None
        if out_rate != rate:
            import soxr

            self.stream = soxr.ResampleStream(rate, out_rate, 1, dtype="float32", quality="HQ")
        ratio = out_rate / rate
        self.max_capacity = None if limit is None else int(limit * ratio) + 1024
        # the declared size, a little over for the resampler's tail; grown by doubling if the header lied
        capacity = int((declared or DECODE_BLOCK_FRAMES) * ratio) + 1024
        if self.max_capacity is not None:
            capacity = min(capacity, self.max_capacity)
        self.buffer = np.empty(capacity, dtype=np.float32)
        self.size = 0

    def add(self, mono: np.ndarray, last: bool = False) -> None:
        if self.stream is not None:
            mono = self.stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)
        end = self.size + len(mono)
        if end > len(self.buffer):
            grown = max(end, 2 * len(self.buffer))
            if self.max_capacity is not None:
                grown = max(end, min(grown, self.max_capacity))
            bigger = np.empty(grown, dtype=np.float32)
            bigger[: self.size] = self.buffer[: self.size]
            self.buffer = bigger
        self.buffer[self.size : end] = mono
        self.size = end

    def finish(self) -> np.ndarray:
        if self.stream is not None:
            self.add(np.zeros(0, dtype=np.float32), last=True)
        if self.size * 2 < len(self.buffer):
            return self.buffer[: self.size].copy()  # a short result does not keep a long buffer alive
        return self.buffer[: self.size]


_OBJECT_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>:?")


def decode_problem(exc: Exception) -> str:
    """libsndfile's reason, without what it says about our in-memory file: ``Error opening
    <_io.BytesIO object at 0x7f...>: ...`` names an object of ours, and "File does not exist or is
    not a regular file (possibly a pipe?)" is what it says of data it cannot find a format in."""
    text = getattr(exc, "error_string", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = _OBJECT_REPR.sub("", text).strip(" :") or type(exc).__name__
    if "does not exist" in text or "possibly a pipe" in text:
        return "not an audio file libsndfile can read, or truncated"
    return text[:200]


def resample(wave: np.ndarray, sample_rate: int, target: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """torchaudio's sinc resampler, as upstream prepares references; soxr where that kernel would be huge.

    Long audio is resampled in blocks of ``RESAMPLE_BLOCK_SECONDS``, each with enough real neighbours
    on both sides for the sinc kernel, so the result is the one-piece result (to float rounding) while
    the memory is a block's: torchaudio's convolution unfolds its input about 10-30 times over, 0.3 GB
    for two minutes at 48 kHz in one piece.
    """
    sample_rate, target = int(sample_rate), int(target)
    if sample_rate == target:
        return wave
    g = math.gcd(sample_rate, target)
    orig, new = sample_rate // g, target // g
    if orig * new > SINC_KERNEL_LIMIT:
        import soxr

        return soxr.resample(np.ascontiguousarray(wave, dtype=np.float32), sample_rate, target, quality="HQ")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    block = max(1, int(RESAMPLE_BLOCK_SECONDS * sample_rate) // orig) * orig  # whole kernel steps
    if len(wave) <= 2 * block:
        return _sinc_resample(wave, sample_rate, target)
    # torchaudio's kernel reaches ceil(6 zero crossings * orig / (0.99 * min(orig, new))) input samples
    # either side of a step: a few steps more of context, in whole steps, cover it.
    context = orig * (math.ceil(7 * orig / min(orig, new)) + 2)
    out = np.empty(math.ceil(new * len(wave) / orig), dtype=np.float32)
    for start in range(0, len(wave), block):
        end = min(start + block, len(wave))
        lo, hi = max(0, start - context), min(len(wave), end + context)
        piece = _sinc_resample(wave[lo:hi], sample_rate, target)
        first, last = start // orig * new, math.ceil(new * end / orig)  # this block's outputs
        skip = (start - lo) // orig * new
        out[first:last] = piece[skip : skip + last - first]
    return out


def _sinc_resample(wave: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return _sinc_resampler(sample_rate, target)(torch.from_numpy(wave)).numpy().astype(np.float32)


@functools.lru_cache(maxsize=16)
def _sinc_resampler(sample_rate: int, target: int):
    """torchaudio's resampler with its kernel computed once (``functional.resample`` computes it per call,
    and per block that would cost more than the resampling)."""
    import torchaudio.transforms as AT

    return AT.Resample(sample_rate, target)


def mean_squares(frames: np.ndarray) -> np.ndarray:
    """Each row's mean square, accumulated in float64 without a float64 copy of the frames (which for
    30 minutes of audio would be gigabytes; einsum converts in small buffers)."""
    return np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / max(frames.shape[1], 1)


def rms(wave: np.ndarray) -> float:
    """The root mean square of a whole wave; 0 for an empty one."""
    return float(np.sqrt(np.mean(np.square(wave)))) if len(wave) else 0.0


def to_pcm16(wave: np.ndarray, block: int = DECODE_BLOCK_FRAMES) -> np.ndarray:
    """The worker's one 16-bit PCM writer: every 16-bit sample it writes (wav, flac and pcm results, stored
    voices, the audio pocketsphinx reads) comes from here.

    A sample is clipped to ±1.0, taken as float32, scaled by 2^15 (exact) and floored, then held to the
    int16 range: what libsndfile 1.2 writes for float32 in a 16-bit WAV, so wav results keep the bytes they
    had when soundfile converted them, and no result depends on the libsndfile version any more.
    Converted block by block: no full-length float temporaries."""
    out = np.empty(len(wave), dtype="<i2")
    for i in range(0, len(wave), block):
        scaled = np.clip(np.asarray(wave[i : i + block], dtype=np.float32), -1.0, 1.0) * np.float32(32768)
        np.floor(scaled, out=scaled)
        np.minimum(scaled, 32767, out=scaled)
        out[i : i + block] = scaled
    return out


def frame_db(wave: np.ndarray, sample_rate: int, frame_ms: float = 10.0) -> np.ndarray:
    """Loudness per frame in dBFS (like pydub's dBFS on a frame)."""
    hop = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // hop
    if n == 0:
        return np.full(1, -120.0)
    rms = np.sqrt(mean_squares(wave[: n * hop].reshape(n, hop)))
    # pydub's dBFS is relative to full-scale square wave (max amplitude 1.0)
    return 20 * np.log10(np.maximum(rms, 1e-6))


def silent_runs(db: np.ndarray, thresh_db: float, min_frames: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges at least ``min_frames`` long that stay below ``thresh_db``."""
    quiet = np.concatenate([[False], db < thresh_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = list(zip(edges[::2], edges[1::2]))
    return [(int(a), int(b)) for a, b in runs if b - a >= min_frames]


def trim_edges(wave: np.ndarray, sample_rate: int, thresh_db: float = -42.0) -> np.ndarray:
    """Drop leading and trailing silence (upstream's ``remove_silence_edges``)."""
    hop = int(sample_rate / 100)
    loud = np.flatnonzero(frame_db(wave, sample_rate) >= thresh_db)
    if loud.size == 0:
        return wave
    return wave[loud[0] * hop : (loud[-1] + 1) * hop]


@dataclass
class TrimmedReference:
    wave: np.ndarray
    warning: str | None


def trim_reference(wave: np.ndarray, sample_rate: int, max_seconds: float) -> TrimmedReference:
    """Keep at most ``max_seconds`` of a reference (``REF_AUDIO_KEEP_SECONDS``), cut at a silence when one exists.

    Mirrors upstream's preprocess_ref_audio_text: prefer a long pause (1 s at
    -50 dBFS), then a short one (100 ms at -40 dBFS), else a hard cut; then trim
    the edges and add 50 ms of silence. The edges are trimmed first too: a clip
    whose speech fits, after seconds of silence before or after it, is kept whole,
    not cut inside its speech (where its transcript would no longer match it).
    """
    hop = int(sample_rate / 100)
    limit = int(max_seconds * sample_rate)
    warning = None
    original = len(wave) / sample_rate
    wave = trim_edges(wave, sample_rate)
    if len(wave) > limit:
        db = frame_db(wave, sample_rate)
        cut = None
        for thresh, min_ms in ((-50.0, 1000), (-40.0, 100)):
            for start, end in reversed(silent_runs(db, thresh, min_ms // 10)):
                mid = (start + end) // 2 * hop
                if 6 * sample_rate <= mid <= limit:
                    cut = mid
                    break
            if cut is not None:
                break
        wave = wave[: cut if cut is not None else limit]
        how = "at a pause" if cut is not None else "(no pause found)"
        warning = f"reference audio was {original:.1f} s; clipped to {len(wave) / sample_rate:.1f} s {how}"
        wave = trim_edges(wave, sample_rate)  # the cut may end in silence; unclipped, the edges are trimmed already
    wave = np.concatenate([wave, np.zeros(int(0.05 * sample_rate), dtype=np.float32)])
    return TrimmedReference(wave=wave.astype(np.float32), warning=warning)


def cross_fade_join(waves: list[np.ndarray], sample_rate: int, duration: float) -> np.ndarray:
    """Join chunks with a linear cross-fade, as upstream does."""
    if not waves:
        return np.zeros(0, dtype=np.float32)
    out = waves[0]
    for nxt in waves[1:]:
        n = min(int(duration * sample_rate), len(out), len(nxt))
        if n <= 0:
            out = np.concatenate([out, nxt])
            continue
        fade = np.linspace(0.0, 1.0, n, dtype=np.float32)
        overlap = out[-n:] * (1.0 - fade) + nxt[:n] * fade
        out = np.concatenate([out[:-n], overlap, nxt[n:]])
    return out.astype(np.float32)


def fade_edges(wave: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Raised-cosine fades of ``seconds`` at both ends (a copy; the length is kept), so audio joined end to
    end, or to silence, meets at zero without a click."""
    wave = np.asarray(wave, dtype=np.float32).copy()
    n = min(int(seconds * sample_rate), len(wave) // 2)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)
        wave[:n] *= ramp
        wave[-n:] *= ramp[::-1]
    return wave


def remove_long_silences(
    wave: np.ndarray, sample_rate: int, thresh_db: float = -50.0, min_ms: int = 1000, keep_ms: int = 500
) -> np.ndarray:
    """Shorten pauses longer than ``min_ms`` to ``2 * keep_ms`` (upstream's remove_silence)."""
    hop = int(sample_rate / 100)
    keep = keep_ms // 10
    pieces, cursor = [], 0
    n_frames = len(wave) // hop
    for start, end in silent_runs(frame_db(wave, sample_rate), thresh_db, min_ms // 10):
        head_keep = keep if start > 0 else 0
        tail_keep = keep if end < n_frames else 0
        pieces.append(wave[cursor : (start + head_keep) * hop])
        cursor = max((end - tail_keep) * hop, (start + head_keep) * hop)
    pieces.append(wave[cursor:])
    return np.concatenate(pieces).astype(np.float32)


def check_encodable(fmt: str, sample_rate: int, model: str | None = None) -> None:
    """Refuse a format that cannot be written at the rate the model speaks at (``model``, where known): a model's
    config may give any rate from 8 to 192 kHz, and Opus takes five of them, MP3 nine. Without this the job
    failed once its audio was made, as ``internal: LibsndfileError``. The error names the job's field,
    ``output_format``; the OpenAI routes rename it (``response_format``) as they do every job field."""
    rates = ENCODER_RATES.get(fmt)
    if rates is None or sample_rate in rates:
        return
    speaker = f"model {model!r}" if model else "the model"
    others = [f for f in OUTPUT_FORMATS if sample_rate in ENCODER_RATES.get(f, (sample_rate,))]
    raise JobError("output_format", f"{fmt} cannot be written at {sample_rate} Hz, the rate {speaker} speaks at "
                                    f"({fmt} takes {', '.join(str(r) for r in rates)} Hz); use {', '.join(others)}")


def encode_audio(wave: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    if fmt not in _ENCODINGS:
        raise JobError("output_format", f"unsupported format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    sf_format, subtype, _ = _ENCODINGS[fmt]
    if subtype == "PCM_16":  # written by to_pcm16, not by libsndfile's own conversion
        samples = to_pcm16(wave)
        if fmt == "pcm":
            return samples.tobytes()
    else:
        samples = np.clip(wave, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=sf_format, subtype=subtype)
    return buf.getvalue()


def estimated_encoded_bytes(n_samples: int, fmt: str) -> int:
    """An upper bound of the encoded size, base64 included (what RunPod counts)."""
    return int(n_samples * BYTES_PER_SAMPLE[fmt] * 4 / 3) + 1024


def speech_region(
    audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.02, floor_db: float = -40.0
) -> tuple[float, float]:
    """First and last moment the audio is louder than ``floor_db`` below its peak frame (seconds)."""
    hop = max(1, int(sample_rate * frame_s))
    n = len(audio) // hop
    if n == 0:
        return 0.0, len(audio) / sample_rate if sample_rate else 0.0
    energy = 10 * np.log10(mean_squares(audio[: n * hop].reshape(n, hop)) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    if len(loud) == 0:
        return 0.0, len(audio) / sample_rate
    return loud[0] * hop / sample_rate, min((loud[-1] + 1) * hop / sample_rate, len(audio) / sample_rate)
