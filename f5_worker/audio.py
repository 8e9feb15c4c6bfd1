"""Audio in and out: decode with soundfile (no ffmpeg), resample, trim, join, encode.

All waves inside the worker are float32 mono numpy arrays.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from f5_worker.errors import JobError

TARGET_SAMPLE_RATE = 24000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000  # what decoded audio may declare
MAX_CHANNELS = 32
DECODE_BLOCK_FRAMES = 1 << 16
# torchaudio's sinc resampler builds a (new/g) x (orig/g) kernel, g = gcd(orig, new): fine for real
# rates (44100 -> 24000 is 80 x 147) but 44101 Hz would take ~18 GB and a minute. Beyond this
# product the resampling goes to soxr, whose cost does not depend on the ratio.
SINC_KERNEL_LIMIT = 1_000_000
OUTPUT_FORMATS = ("wav", "flac", "mp3", "opus", "pcm")

# (soundfile format, subtype, MIME type) per output format; pcm is raw s16le.
_ENCODINGS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
    "pcm": ("RAW", "PCM_16", "audio/L16"),
}

# Upper bounds on encoded bytes per sample, used to refuse an oversized result before synthesis.
BYTES_PER_SAMPLE = {"wav": 2.0, "flac": 2.0, "pcm": 2.0, "mp3": 0.5, "opus": 0.5}


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


def decode_audio(data: bytes, field: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode any format libsndfile knows (wav, flac, mp3, ogg/vorbis/opus...) to mono float32.

    With ``max_seconds``, longer audio is refused after decoding at most that much: a few hundred
    kB of FLAC can hold an hour of silence (gigabytes once decoded). Channels are mixed to mono
    block by block, so memory stays that of the mono result.
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
            parts, total = [], 0
            for block in f.blocks(blocksize=DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
                parts.append(block.mean(axis=1, dtype=np.float32))
                total += len(block)
                if limit is not None and total >= limit:  # the header undercounted, or could not count
                    raise JobError(field, f"audio is longer than {max_seconds:g} s, the limit")
    except JobError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for junk input
        raise JobError(field, f"could not decode audio ({_first_line(exc)})") from None
    if total == 0:
        raise JobError(field, "audio has no samples")
    wave = np.concatenate(parts).astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise JobError(field, "audio contains invalid samples")
    return wave, sample_rate


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def resample(wave: np.ndarray, sample_rate: int, target: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """torchaudio's sinc resampler, as upstream prepares references; soxr where that kernel would be huge."""
    sample_rate, target = int(sample_rate), int(target)
    if sample_rate == target:
        return wave
    g = math.gcd(sample_rate, target)
    if (sample_rate // g) * (target // g) > SINC_KERNEL_LIMIT:
        import soxr

        return soxr.resample(np.ascontiguousarray(wave, dtype=np.float32), sample_rate, target, quality="HQ")
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), sample_rate, target)
    return out.numpy().astype(np.float32)


def frame_db(wave: np.ndarray, sample_rate: int, frame_ms: float = 10.0) -> np.ndarray:
    """Loudness per frame in dBFS (like pydub's dBFS on a frame)."""
    hop = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // hop
    if n == 0:
        return np.full(1, -120.0)
    frames = wave[: n * hop].reshape(n, hop).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
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


def trim_reference(wave: np.ndarray, sample_rate: int, max_seconds: float = 12.0) -> TrimmedReference:
    """Keep at most ``max_seconds`` of a reference, cut at a silence when one exists.

    Mirrors upstream's preprocess_ref_audio_text: prefer a long pause (1 s at
    -50 dBFS), then a short one (100 ms at -40 dBFS), else a hard cut; then trim
    the edges and add 50 ms of silence.
    """
    hop = int(sample_rate / 100)
    limit = int(max_seconds * sample_rate)
    warning = None
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
        original = len(wave) / sample_rate
        wave = wave[: cut if cut is not None else limit]
        how = "at a pause" if cut is not None else "(no pause found)"
        warning = f"reference audio was {original:.1f} s; clipped to {len(wave) / sample_rate:.1f} s {how}"
    wave = trim_edges(wave, sample_rate)
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


def encode_audio(wave: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    if fmt not in _ENCODINGS:
        raise JobError("output_format", f"unsupported format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    sf_format, subtype, _ = _ENCODINGS[fmt]
    clipped = np.clip(wave, -1.0, 1.0)
    if fmt == "pcm":
        return (clipped * 32767.0).round().astype("<i2").tobytes()
    buf = io.BytesIO()
    sf.write(buf, clipped, sample_rate, format=sf_format, subtype=subtype)
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
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    if len(loud) == 0:
        return 0.0, len(audio) / sample_rate
    return loud[0] * hop / sample_rate, min((loud[-1] + 1) * hop / sample_rate, len(audio) / sample_rate)
