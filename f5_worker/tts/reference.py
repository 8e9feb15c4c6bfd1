"""A reference voice made ready for sampling, and the cache that keeps it across jobs.

F5-TTS clones the voice of a short reference clip with its transcript. Preparing
one (decode, resample to 24 kHz, trim to ``REF_AUDIO_KEEP_SECONDS``, raise a
quiet one to ``target_rms``, later its mel spectrogram) costs milliseconds to
seconds, so prepared references are cached by content: a client that sends the
same clip again, or names a stored voice, pays once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from importlib.resources import files

import numpy as np

from f5_worker import audio
from f5_worker.config import DEFAULT_REF_AUDIO_KEEP_SECONDS
from f5_worker.errors import JobError
from f5_worker.lru import LRU

REFERENCE_CACHE_SIZE = 32  # prepared references kept, most recently used first
# The one check of a reference's sound, for a job's clip and an upload alike (``check_reference_sound``): a
# reference shorter than this after its edges are trimmed (the 50 ms of silence trim_reference adds
# included), or quieter than this RMS (-80 dBFS: digital silence, or next to it), is refused.
MIN_REFERENCE_SECONDS = 0.5
SILENT_RMS = 1e-4
# The voice used when a job names none: f5-tts's own example clip and its transcript.
DEFAULT_VOICE_FILE = "infer/examples/basic/basic_ref_en.wav"
DEFAULT_VOICE_TEXT = "Some call me nature, others call me mother nature."


@dataclass
class PreparedReference:
    """A reference voice ready for sampling: cached per voice and reused across jobs, by every model."""

    wave: np.ndarray  # 24 kHz mono, raised to target_rms (RMS) when quieter
    text: str  # ends with ". " (or "。") as upstream expects
    rms: float  # RMS before it was raised; generated audio is scaled back to it
    target_rms: float
    duration: float
    warnings: list[str] = field(default_factory=list)
    # Its mel spectrogram per mel setting (``mel_for``), filled by the samplers as they use it. One reference
    # serves every model, and a model whose mel differs (its STFT, hop, mel bands or extractor) must not
    # sample with another model's mel; models that share the setting share the mel.
    mels: dict[Hashable, object] = field(default_factory=dict, repr=False)

    def mel_for(self, setting: Hashable, compute: Callable[[], object]) -> object:
        """The mel for ``setting`` (what the model's mel depends on), computed once by ``compute``. Two
        samplers computing it at once both get a correct mel; one of them is kept."""
        mel = self.mels.get(setting)
        if mel is None:
            mel = self.mels.setdefault(setting, compute())
        return mel


# F5-TTS sizes the generated audio from the reference's speaking rate (bytes of text per second of
# audio), so a transcript that is not the audio's sizes every job with that voice wrongly. Fast speech is
# about 20-30 UTF-8 bytes a second in English, Chinese, Japanese or Korean; a transcript far denser than
# this leaves (next to) no frames to generate. Slow speech is about 9 (100 English words a minute, 2
# Chinese characters a second); a transcript far sparser draws out all speech made with it: "a" for 10 s
# of reference made "Hello there." last 122 s.
MAX_REF_TEXT_BYTES_PER_SECOND = 60.0
MIN_REF_TEXT_BYTES_PER_SECOND = 3.0


def check_reference_rate(text: str, seconds: float, field: str = "ref_text") -> None:
    """Refuse a transcript that cannot be the whole of what the reference audio says: far too long or far
    too short for it."""
    size = len(text.strip().encode("utf-8"))
    said = f"is {size} byte{'' if size == 1 else 's'} of text for {seconds:.1f} s of reference audio"
    if seconds <= 0 or size / seconds > MAX_REF_TEXT_BYTES_PER_SECOND:
        raise JobError(field, f"{said}, over {MAX_REF_TEXT_BYTES_PER_SECOND:g} a second: it cannot be this "
                              "audio's transcript")
    if size / seconds < MIN_REF_TEXT_BYTES_PER_SECOND:
        raise JobError(field, f"{said}, under {MIN_REF_TEXT_BYTES_PER_SECOND:g} a second: it cannot be all "
                              "this audio says, and speech made with it would be drawn out as much")


def decode_reference(data: bytes, field: str, *, max_input_seconds: float, keep_seconds: float,
                     with_transcript: bool) -> tuple[np.ndarray, int]:
    """A reference clip decoded (any format libsndfile reads, ``audio.decode``) as (wave, its rate), refused
    when it comes ``with_transcript`` and holds more speech than a reference keeps: clipping would keep
    only the first part of the speech, and the transcript would no longer match it (F5-TTS then sizes and
    says the text wrongly). The same for a job's clip and for an upload with ``ref_text``; an upload without
    one is clipped at a pause and the part kept transcribed."""
    decoded = audio.decode(data, field, max_input_seconds)
    wave, sample_rate = decoded.wave, decoded.sample_rate
    if with_transcript:
        first, last = audio.speech_region(wave, sample_rate)
        if last - first > keep_seconds:
            raise JobError(field, f"holds {last - first:.1f} s of speech; a reference keeps at most "
                                  f"{keep_seconds:g} s, and ref_text would not match the clipped audio: "
                                  "send a shorter clip with its own transcript")
    return wave, sample_rate


def check_reference_sound(duration: float, rms: float, field: str) -> None:
    """Refuse a reference with (next to) nothing to clone: silent, or shorter than ``MIN_REFERENCE_SECONDS``
    once its edges are trimmed. ``duration`` and ``rms`` are the trimmed 24 kHz wave's, before its loudness
    is raised to ``target_rms``. One rule for a job's clip and an upload, so a clip a job may speak with can
    be stored as a voice, and the other way round."""
    if duration < MIN_REFERENCE_SECONDS or rms < SILENT_RMS:
        raise JobError(field, f"reference audio is silent or shorter than {MIN_REFERENCE_SECONDS:g} s")


def punctuated_ref_text(text: str) -> str:
    """Upstream ends the reference text with sentence punctuation and a space."""
    text = text.strip()
    if text.endswith("。"):
        return text
    if not text.endswith("."):
        text += "."
    return text + " "


def prepare_reference(wave: np.ndarray, sample_rate: int, text: str, *, target_rms: float = 0.1,
                      keep_seconds: float = DEFAULT_REF_AUDIO_KEEP_SECONDS) -> PreparedReference:
    wave = audio.resample(wave, sample_rate, audio.TARGET_SAMPLE_RATE)
    trimmed = audio.trim_reference(wave, audio.TARGET_SAMPLE_RATE, keep_seconds)
    wave = trimmed.wave
    rms = audio.rms(wave)
    if 0 < rms < target_rms:
        wave = wave * (target_rms / rms)
    return PreparedReference(
        wave=wave.astype(np.float32),
        text=punctuated_ref_text(text),
        rms=rms,
        target_rms=target_rms,
        duration=len(wave) / audio.TARGET_SAMPLE_RATE,
        warnings=[trimmed.warning] if trimmed.warning else [],
    )


class ReferencePreparer:
    """Turns a job's reference (uploaded bytes, or none: the default voice) into a cached PreparedReference."""

    def __init__(self, *, max_input_seconds: float, keep_seconds: float,
                 cache: LRU[str, PreparedReference] | None = None):
        self.max_input_seconds = max_input_seconds
        self.keep_seconds = keep_seconds
        self.cache = cache if cache is not None else LRU(REFERENCE_CACHE_SIZE)  # by content hash

    def from_bytes(self, data: bytes, text: str, field: str, target_rms: float,
                   text_field: str = "ref_text") -> PreparedReference:
        """A client's clip and transcript; ``field`` and ``text_field`` name where they came from, for errors."""
        key = "audio:" + hashlib.sha256(data + text.encode() + str(target_rms).encode()).hexdigest()
        return self.cache.get_or_make(key, lambda: self._prepare(data, text, field, target_rms, trusted=False,
                                                                 text_field=text_field))

    def default_voice(self, target_rms: float) -> PreparedReference:
        data = files("f5_tts").joinpath(DEFAULT_VOICE_FILE).read_bytes()
        return self.cache.get_or_make(f"default:{target_rms}", lambda: self._prepare(
            data, DEFAULT_VOICE_TEXT, "default voice", target_rms, trusted=True))

    def _prepare(self, data: bytes, text: str, field: str, target_rms: float, *, trusted: bool,
                 text_field: str = "ref_text") -> PreparedReference:
        """``trusted``: the default voice, whose clip and transcript are known to match (not re-checked)."""
        wave, sample_rate = decode_reference(data, field, max_input_seconds=self.max_input_seconds,
                                             keep_seconds=self.keep_seconds, with_transcript=not trusted)
        ref = prepare_reference(wave, sample_rate, text, target_rms=target_rms, keep_seconds=self.keep_seconds)
        check_reference_sound(ref.duration, ref.rms, field)
        if not trusted:
            check_reference_rate(text, ref.duration, text_field)
        return ref
