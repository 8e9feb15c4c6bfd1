"""Saved voices: a name -> normalised reference audio + transcript, kept in ``Storage``.

Users clone a voice once and use it in thousands of jobs, so the reference is
normalised at upload (24 kHz mono, at most 12 s cut at a pause, edges
trimmed), transcribed once if no ``ref_text`` was given, and stored as two
objects under ``voices/<name>/``:

- ``audio-<version>.wav``: the reference, a new key per upload;
- ``voice.json``: the metadata, written last; it names the audio key, so it
  is the commit point. Creating it is a conditional write (``put_if_absent``),
  so of two uploads of a new name exactly one wins; replacing it is a single
  atomic PUT/rename, so readers see the old voice or the new one, never a mix.

Prepared references (what the engine derives from the audio) are cached in
memory per voice *version*; every use re-reads the small metadata object, so
a voice replaced or deleted by another worker is noticed at once.
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import TypeAdapter

from f5_worker import audio
from f5_worker.errors import JobError
from f5_worker.storage.base import NotFound, Storage, StorageError
from f5_worker.tts.reference import check_reference_rate

MAX_NAME_LENGTH = 64
VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VOICES_PREFIX = "voices/"
META_FILE = "voice.json"
MIN_VOICE_SECONDS = 1.0
PREPARED_PER_VOICE = 4  # prepared variants (target RMS) kept per cached voice, on average
SILENCE_DB = -42.0  # the level below which audio.trim_edges treats frames as silence
# Audio written by an upload that never committed (lost a race, crashed) is removed after this.
ORPHAN_GRACE = timedelta(minutes=10)

Transcriber = Callable[[np.ndarray, int], str]


def check_voice_name(name: Any, field: str = "name") -> str:
    """A voice name is a single safe path segment: letters, digits, ``_ . -``, at most 64 chars."""
    if not isinstance(name, str) or not name:
        raise JobError(field, "must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise JobError(field, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if "/" in name or "\\" in name or ".." in name:
        raise JobError(field, "must not contain path separators or '..'")
    if not VOICE_NAME.fullmatch(name):
        raise JobError(field, "may only use letters, digits, '_', '.' and '-', and must start with a letter or digit")
    return name


@dataclass(frozen=True)
class VoiceInfo:
    """The metadata JSON of a voice."""

    name: str
    ref_text: str
    ref_text_source: str  # "given" or "asr"
    duration_s: float
    sample_rate: int
    size_bytes: int
    created: str  # ISO 8601, UTC
    version: str
    audio_key: str
    format: int = 1

    def public(self) -> dict:
        """What ``list_voices``/``get_voice`` show (storage keys stay internal)."""
        return {
            "name": self.name,
            "duration": self.duration_s,
            "ref_text": self.ref_text,
            "ref_text_source": self.ref_text_source,
            "size": self.size_bytes,
            "created": self.created,
            "version": self.version,
        }

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> VoiceInfo:
        """Raises ValueError for metadata that is not what ``to_json`` writes (types checked by pydantic)."""
        info = _VOICE_INFO.validate_json(data, strict=True)
        if not info.ref_text.strip() or not info.audio_key:
            raise ValueError("voice metadata lacks its transcript or audio key")
        return info


_VOICE_INFO = TypeAdapter(VoiceInfo)


@dataclass(frozen=True)
class StoredVoice:
    info: VoiceInfo
    wave: np.ndarray  # 24 kHz mono float32

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate


@dataclass(frozen=True)
class NormalisedReference:
    wave: np.ndarray
    clipped_from_s: float | None


def normalise_reference(
    data: bytes, field: str, *, max_input_seconds: float, keep_seconds: float
) -> NormalisedReference:
    """Decode (any libsndfile format, recognised by content), 24 kHz mono, clip at a pause, trim edges."""
    wave, sample_rate = audio.decode_audio(data, field, max_seconds=max_input_seconds)
    seconds = len(wave) / sample_rate
    wave = audio.resample(wave, sample_rate, audio.TARGET_SAMPLE_RATE)
    trimmed = audio.trim_reference(wave, audio.TARGET_SAMPLE_RATE, keep_seconds)
    clipped = seconds if trimmed.warning else None
    return NormalisedReference(trimmed.wave, clipped)


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class VoiceStore:
    """Create, read, list and delete voices in a ``Storage``, with a prepared-reference cache."""

    def __init__(
        self,
        storage: Storage,
        *,
        transcriber: Transcriber | None = None,
        keep_seconds: float = 12.0,
        max_input_seconds: float = 120.0,
        cache_size: int = 32,
    ):
        self.storage = storage
        self.transcriber = transcriber
        self.keep_seconds = keep_seconds
        self.max_input_seconds = max_input_seconds
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._voices: OrderedDict[str, StoredVoice] = OrderedDict()
        self._prepared: OrderedDict[tuple[str, str, Hashable], Any] = OrderedDict()  # LRU, see prepared()

    # --- keys -----------------------------------------------------------------
    @staticmethod
    def _meta_key(name: str) -> str:
        return f"{VOICES_PREFIX}{name}/{META_FILE}"

    @staticmethod
    def _audio_key(name: str, version: str) -> str:
        return f"{VOICES_PREFIX}{name}/audio-{version}.wav"

    def _storage_error(self, exc: StorageError, what: str) -> JobError:
        return JobError("storage", f"{what}: {exc}")

    # --- write ----------------------------------------------------------------
    def save(
        self,
        name: str,
        data: bytes,
        *,
        ref_text: str | None = None,
        overwrite: bool = False,
        audio_field: str = "audio",
    ) -> VoiceInfo:
        """Normalise, transcribe if needed, store; returns the committed metadata.

        Without ``overwrite`` an existing name is refused, also when another
        upload of the same name commits first while this one is in flight.
        """
        name = check_voice_name(name)
        if ref_text is not None and not ref_text.strip():
            raise JobError("ref_text", "is empty; leave it out to have the audio transcribed")
        if not overwrite and self._read_info(name, field="name") is not None:
            raise self._exists(name)

        ref = normalise_reference(
            data, audio_field, max_input_seconds=self.max_input_seconds, keep_seconds=self.keep_seconds
        )
        if ref.clipped_from_s is not None and ref_text is not None:
            raise JobError(
                audio_field,
                f"audio is {ref.clipped_from_s:.1f} s; a voice keeps at most {self.keep_seconds:g} s, and the "
                "given ref_text would not match the clipped audio: upload a shorter clip, or leave out "
                "ref_text to have the kept part transcribed",
            )
        duration = len(ref.wave) / audio.TARGET_SAMPLE_RATE
        if ref_text is not None:
            check_reference_rate(ref_text, duration)
        if float(np.max(audio.frame_db(ref.wave, audio.TARGET_SAMPLE_RATE))) < SILENCE_DB:
            raise JobError(audio_field, "audio is silent")
        if duration < MIN_VOICE_SECONDS:
            raise JobError(
                audio_field,
                f"only {duration:.2f} s of sound after trimming silence; "
                f"a voice needs at least {MIN_VOICE_SECONDS:g} s",
            )
        if ref_text is None:
            text, source = self._transcribe(ref.wave), "asr"
        else:
            text, source = ref_text.strip(), "given"

        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        wav = encode_wav(ref.wave, audio.TARGET_SAMPLE_RATE)
        info = VoiceInfo(
            name=name,
            ref_text=text,
            ref_text_source=source,
            duration_s=round(duration, 3),
            sample_rate=audio.TARGET_SAMPLE_RATE,
            size_bytes=len(wav),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            version=version,
            audio_key=self._audio_key(name, version),
        )
        try:
            self.storage.put(info.audio_key, wav, "audio/wav")
            if overwrite:
                previous = self._read_info(name, damaged_ok=True)
                self.storage.put(self._meta_key(name), info.to_json(), "application/json")
                if previous is not None and previous.audio_key != info.audio_key:
                    self.storage.delete(previous.audio_key)  # no metadata points to it any more
                committed = True
            else:
                committed = self.storage.put_if_absent(self._meta_key(name), info.to_json(), "application/json")
                if not committed:  # ours after all, if the write landed, its answer was lost and a retry saw it
                    stored = self._read_info(name, damaged_ok=True)
                    committed = stored is not None and stored.version == info.version
            if not committed:
                self.storage.delete(info.audio_key)
                raise self._exists(name)
            self._collect_garbage(name, keep=info.audio_key)
        except StorageError as exc:
            raise self._storage_error(exc, f"could not save voice {name!r}") from None
        self._forget(name)
        return info

    def _exists(self, name: str) -> JobError:
        return JobError("name", f"a voice named {name!r} already exists; set overwrite: true to replace it")

    def _transcribe(self, wave: np.ndarray) -> str:
        if self.transcriber is None:
            raise JobError("ref_text", "is required: speech recognition is not configured on this worker")
        text = self.transcriber(wave, audio.TARGET_SAMPLE_RATE).strip()
        if not text:
            raise JobError("ref_text", "speech recognition heard no words in the audio; give ref_text")
        return text

    def _collect_garbage(self, name: str, keep: str | None) -> None:
        """Remove stale audio no metadata points to (uploads that lost a race or died mid-way).

        Young files are left alone: another upload may be between writing its
        audio and committing its metadata.
        """
        current = self._read_info(name, damaged_ok=True)
        referenced = {keep, current.audio_key if current else None}
        now = datetime.now(UTC)
        for obj in self.storage.list(f"{VOICES_PREFIX}{name}/"):
            if obj.key.endswith("/" + META_FILE) or obj.key in referenced:
                continue
            if now - obj.modified > ORPHAN_GRACE:
                self.storage.delete(obj.key)

    def delete(self, name: str) -> VoiceInfo:
        """Remove a voice (metadata first, so it disappears atomically) and its audio."""
        name = check_voice_name(name)
        info = self._read_info(name, field="name")
        if info is None:
            raise JobError("name", f"no voice named {name!r}")
        try:
            self.storage.delete(self._meta_key(name))
            self.storage.delete(info.audio_key)
            self._collect_garbage(name, keep=None)
        except StorageError as exc:
            raise self._storage_error(exc, f"could not delete voice {name!r}") from None
        self._forget(name)
        return info

    # --- read -----------------------------------------------------------------
    def _read_info(self, name: str, damaged_ok: bool = False, field: str = "voice") -> VoiceInfo | None:
        """The voice's metadata, None if there is no such voice (or, with ``damaged_ok``, if it is unreadable)."""
        try:
            return VoiceInfo.from_json(self.storage.get(self._meta_key(name)))
        except NotFound:
            return None
        except StorageError as exc:
            raise self._storage_error(exc, f"could not read voice {name!r}") from None
        except (ValueError, TypeError, KeyError):
            if damaged_ok:
                return None
            problem = f"voice {name!r} has damaged metadata; upload it again with overwrite: true"
            raise JobError(field, problem) from None

    def info(self, name: str, field: str = "name") -> VoiceInfo:
        info = self._read_info(check_voice_name(name, field), field=field)
        if info is None:
            raise JobError(field, f"no voice named {name!r}")
        return info

    def list(self) -> list[VoiceInfo]:
        try:
            keys = [o.key for o in self.storage.list(VOICES_PREFIX) if o.key.endswith("/" + META_FILE)]
        except StorageError as exc:
            raise self._storage_error(exc, "could not list voices") from None
        out = []
        for key in keys:
            name = key[len(VOICES_PREFIX) : -len(META_FILE) - 1]
            # a damaged voice must not hide the others; a storage error fails the listing (not a shorter list)
            info = self._read_info(name, damaged_ok=True)
            if info is not None:
                out.append(info)
        return sorted(out, key=lambda v: v.name)

    def load(self, name: str, field: str = "voice") -> StoredVoice:
        """The voice's audio and text; served from memory while its version is unchanged."""
        for _attempt in range(3):
            info = self.info(name, field)
            with self._lock:
                cached = self._voices.get(name)
                if cached is not None and cached.info.version == info.version:
                    self._voices.move_to_end(name)
                    return cached
            try:
                data = self.storage.get(info.audio_key)
            except NotFound:
                continue  # replaced between reading metadata and audio: read the new metadata
            except StorageError as exc:
                raise self._storage_error(exc, f"could not load voice {name!r}") from None
            wave, sample_rate = audio.decode_audio(data, field)
            voice = StoredVoice(info, audio.resample(wave, sample_rate, audio.TARGET_SAMPLE_RATE))
            with self._lock:
                self._drop_prepared(name)
                self._voices[name] = voice
                self._voices.move_to_end(name)
                while len(self._voices) > self.cache_size:
                    evicted, _ = self._voices.popitem(last=False)
                    self._drop_prepared(evicted)
            return voice
        raise JobError(field, f"voice {name!r} is damaged (its audio is missing); upload it again with overwrite: true")

    def prepared(self, name: str, variant: Hashable, build: Callable[[StoredVoice], Any], field: str = "voice") -> Any:
        """``build(voice)`` computed once per voice version and ``variant`` (e.g. the job's target RMS).

        At most ``PREPARED_PER_VOICE`` × ``cache_size`` are kept in all, least recently used
        out first: a variant is any float a caller sends, and each one holds a prepared
        reference (its mel on the GPU once sampled), so they must not pile up.
        """
        voice = self.load(name, field)
        key = (name, voice.info.version, variant)
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        value = build(voice)
        with self._lock:
            current = self._voices.get(name)
            if current is not None and current.info.version == voice.info.version:
                self._prepared[key] = value
                while len(self._prepared) > self.cache_size * PREPARED_PER_VOICE:
                    self._prepared.popitem(last=False)
        return value

    def _drop_prepared(self, name: str) -> None:
        for key in [k for k in self._prepared if k[0] == name]:
            del self._prepared[key]

    def _forget(self, name: str) -> None:
        with self._lock:
            self._voices.pop(name, None)
            self._drop_prepared(name)

    def cached_versions(self) -> dict[str, str]:
        """Which voice versions are in memory (reported by ``health``, used by tests)."""
        with self._lock:
            return {name: v.info.version for name, v in self._voices.items()}
