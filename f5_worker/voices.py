"""Saved voices: a name -> reference audio (as a voice keeps it) + transcript, kept in ``Storage``.

Users clone a voice once and use it in thousands of jobs, so the reference is
converted at upload (24 kHz mono, at most ``REF_AUDIO_KEEP_SECONDS`` cut at a
pause, edges trimmed), transcribed once if no ``ref_text`` was given, and stored as two
objects under ``voices/<name>/``:

- ``audio-<version>.wav``: the reference, a new key per upload;
- ``voice.json``: the metadata, written last; it names the audio key, so it
  is the commit point. Creating it is a conditional write (``put_if_absent``),
  so of two uploads of a new name exactly one wins; replacing it is a single
  atomic PUT/rename, so readers see the old voice or the new one, never a mix.

Prepared references (what the engine derives from the audio) are cached in
memory per voice *version*; every job re-reads the small metadata object (once:
a job that has read it hands it to ``load``), so a voice replaced or deleted by
another worker is noticed at once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError

from f5_worker import audio
from f5_worker.config import DEFAULT_REF_AUDIO_KEEP_SECONDS
from f5_worker.errors import STORAGE_FIELD, JobError
from f5_worker.limits import MAX_REF_TEXT_CHARS, check_voice_name
from f5_worker.logs import echo
from f5_worker.lru import LRU
from f5_worker.storage.base import NotFound, Storage, StorageError, check_key
from f5_worker.tts.reference import (
    check_reference_rate,
    check_reference_sound,
    decode_reference,
)

log = logging.getLogger(__name__)

VOICES_PREFIX = "voices/"
META_FILE = "voice.json"
PREPARED_PER_VOICE = 4  # prepared variants (target RMS) kept per cached voice, on average
# Audio written by an upload that never committed (lost a race, crashed) is removed after this.
ORPHAN_GRACE = timedelta(minutes=10)

Transcriber = Callable[[np.ndarray, int], str]
_MISSING = object()


class DamagedVoice(ValueError):
    """A voice's stored metadata is not what ``VoiceInfo.to_json`` writes; the message names the field."""


_Text = Annotated[str, Field(max_length=200)]


@dataclass(frozen=True)
class VoiceInfo:
    """The metadata JSON of a voice.

    It is read back from a volume or a bucket that a crash, another tool or an operator may have
    changed, so it is validated like a request (``from_json``): every value the worker acts on is
    bounded, and the audio it names must be this voice's own.
    """

    name: _Text
    ref_text: Annotated[str, Field(min_length=1, max_length=MAX_REF_TEXT_CHARS)]
    ref_text_source: _Text  # "given" or "asr"
    duration_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    sample_rate: Annotated[int, Field(ge=audio.MIN_SAMPLE_RATE, le=audio.MAX_SAMPLE_RATE)]
    size_bytes: Annotated[int, Field(ge=0)]
    created: _Text  # ISO 8601, UTC
    version: _Text
    audio_key: Annotated[str, Field(min_length=1, max_length=300)]
    format: int = 1
    model: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # jobs with the voice use it by default
    language: Annotated[str, Field(min_length=2, max_length=16)] | None = None  # the language the voice speaks

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
            "model": self.model,
            "language": self.language,
        }

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, name: str) -> VoiceInfo:
        """The metadata of voice ``name``; raises ``DamagedVoice`` naming the first field that is not what
        ``to_json`` writes for it (types checked strictly by pydantic)."""
        try:
            info = _VOICE_INFO.validate_json(data, strict=True)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            problem = "not valid JSON" if first["type"] == "json_invalid" else first["msg"]
            problem = problem.replace("Input should be ", "must be ").replace("String should have ", "must have ")
            raise DamagedVoice(f"{where}: {problem}" if where else problem) from None
        if not info.ref_text.strip():
            raise DamagedVoice("ref_text: is empty")
        if info.name != name:
            raise DamagedVoice("name: is not the voice's own")
        if not is_own_audio_key(info.audio_key, name):
            raise DamagedVoice(f"audio_key: must name a file in {VOICES_PREFIX}{name}/")
        return info


_VOICE_INFO = TypeAdapter(VoiceInfo)


def is_own_audio_key(key: Any, name: str) -> bool:
    """True when ``key`` is a safe key of a file in voice ``name``'s own folder (not its metadata):
    the only audio a voice may load, and the only file its deletion may remove besides the metadata."""
    prefix = f"{VOICES_PREFIX}{name}/"
    if not isinstance(key, str) or not key.startswith(prefix):
        return False
    rest = key[len(prefix):]
    try:
        check_key(key)
    except ValueError:
        return False
    return "/" not in rest and rest != META_FILE


@dataclass(frozen=True)
class StoredVoice:
    info: VoiceInfo
    wave: np.ndarray  # 24 kHz mono float32

    @property
    def sample_rate(self) -> int:
        """The wave's rate, which ``load`` made 24 kHz (not what the metadata says: it may be damaged)."""
        return audio.TARGET_SAMPLE_RATE


def voice_audio_from_upload(data: bytes, field: str, *, max_input_seconds: float, keep_seconds: float,
                            with_transcript: bool = False) -> np.ndarray:
    """An upload's audio as a voice keeps it: decoded (any libsndfile format, recognised by content), 24 kHz
    mono, clipped at a pause, edges trimmed; checked as any reference is (``tts.reference``): refused when
    it holds more speech than is kept ``with_transcript``, and when it is silent or too short."""
    wave, sample_rate = decode_reference(data, field, max_input_seconds=max_input_seconds,
                                         keep_seconds=keep_seconds, with_transcript=with_transcript)
    wave = audio.resample(wave, sample_rate, audio.TARGET_SAMPLE_RATE)
    wave = audio.trim_reference(wave, audio.TARGET_SAMPLE_RATE, keep_seconds).wave
    check_reference_sound(len(wave) / audio.TARGET_SAMPLE_RATE, audio.rms(wave), field)
    return wave


def _damaged(field: str, name: str, what: str) -> JobError:
    return JobError(field, f"voice {name!r} is damaged: its {what}; upload it again with overwrite: true")


def _audio_key_of_damaged(data: bytes, name: str) -> str | None:
    """The audio a damaged voice's metadata names, if it can be read and is the voice's own."""
    try:
        key = json.loads(data).get("audio_key")
    except (ValueError, AttributeError, RecursionError):
        return None
    return key if is_own_audio_key(key, name) else None


class VoiceStore:
    """Create, read, list and delete voices in a ``Storage``, with a prepared-reference cache."""

    def __init__(
        self,
        storage: Storage,
        *,
        transcriber: Transcriber | None = None,
        keep_seconds: float = DEFAULT_REF_AUDIO_KEEP_SECONDS,
        max_input_seconds: float = 120.0,
        cache_size: int = 32,
    ):
        self.storage = storage
        self.transcriber = transcriber
        self.keep_seconds = keep_seconds
        self.max_input_seconds = max_input_seconds
        self.cache_size = cache_size
        # Both caches change together (a voice replaced or evicted takes its prepared forms with it): one lock.
        self._lock = threading.RLock()
        self._voices: LRU[str, StoredVoice] = LRU(cache_size, lock=self._lock,
                                                  on_evict=lambda name, _voice: self._drop_prepared(name))
        # by (name, version, variant), see prepared()
        self._prepared: LRU[tuple[str, str, Hashable], Any] = LRU(cache_size * PREPARED_PER_VOICE, lock=self._lock)

    # --- keys -----------------------------------------------------------------
    @staticmethod
    def _meta_key(name: str) -> str:
        return f"{VOICES_PREFIX}{name}/{META_FILE}"

    @staticmethod
    def _audio_key(name: str, version: str) -> str:
        return f"{VOICES_PREFIX}{name}/audio-{version}.wav"

    def _storage_error(self, exc: StorageError, what: str) -> JobError:
        return JobError(STORAGE_FIELD, f"{what}: {exc}")

    # --- write ----------------------------------------------------------------
    def save(
        self,
        name: str,
        data: bytes,
        *,
        ref_text: str | None = None,
        overwrite: bool = False,
        audio_field: str = "audio",
        model: str | None = None,
        language: str | None = None,
    ) -> VoiceInfo:
        """Convert the audio, transcribe it if needed, store; returns the committed metadata.

        Without ``overwrite`` an existing name is refused, also when another
        upload of the same name commits first while this one is in flight.
        """
        name = check_voice_name(name)
        if ref_text is not None and not ref_text.strip():
            raise JobError("ref_text", "is empty; leave it out to have the audio transcribed")
        if not overwrite and self._read_info(name, field="name") is not None:
            raise self._exists(name)

        # The audio's own problems first: a transcript cannot fit audio that is not there.
        wave = voice_audio_from_upload(data, audio_field, max_input_seconds=self.max_input_seconds,
                                       keep_seconds=self.keep_seconds, with_transcript=ref_text is not None)
        duration = len(wave) / audio.TARGET_SAMPLE_RATE
        if ref_text is not None:
            check_reference_rate(ref_text, duration)
            text, source = ref_text.strip(), "given"
        else:
            text, source = self._transcribe(wave), "asr"
            try:  # every job with the voice would be refused (load): refused here, where ref_text can be given
                check_reference_rate(text, duration)
            except JobError as exc:
                raise JobError("ref_text", f"not given, and the transcript speech recognition made "
                                           f"({echo(text)}) {exc.problem}; give ref_text") from None

        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        wav = audio.encode_audio(wave, audio.TARGET_SAMPLE_RATE, "wav")
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
            model=model,
            language=language,
        )
        replaced = None  # the audio of the voice this upload replaces
        try:
            self.storage.put(info.audio_key, wav, "audio/wav")
            if overwrite:
                previous = self._read_info(name, damaged_ok=True)
                self.storage.put(self._meta_key(name), info.to_json(), "application/json")
                if previous is not None and previous.audio_key != info.audio_key:
                    replaced = previous.audio_key  # no metadata points to it any more
                committed = True
            else:
                committed = self.storage.put_if_absent(self._meta_key(name), info.to_json(), "application/json")
                if not committed:  # ours after all, if the write landed, its answer was lost and a retry saw it
                    stored = self._read_info(name, damaged_ok=True)
                    committed = stored is not None and stored.version == info.version
            if not committed:
                self.storage.delete(info.audio_key)
                raise self._exists(name)
        except StorageError as exc:
            raise self._storage_error(exc, f"could not save voice {name!r}") from None
        self._forget(name)
        self._tidy(name, keep=info.audio_key, unused=replaced)
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

    def _tidy(self, name: str, keep: str | None, unused: str | None) -> None:
        """After a commit (the metadata written, or deleted), the audio no metadata points to any more: ``unused``
        (the audio replaced or deleted) and what _collect_garbage finds. The voice is saved, or gone, already,
        so a storage failure here is no failure of the job's: it is logged, and what stays is removed by a
        later upload or delete of the name (once ORPHAN_GRACE old), as an upload that died half-way leaves it."""
        try:
            if unused is not None:
                self.storage.delete(unused)
            self._collect_garbage(name, keep)
        except (StorageError, JobError) as exc:  # JobError: the metadata read again (_read_info)
            log.warning("voice %r: audio no longer used stays until a later upload or delete of the name: %s",
                        name, exc)

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

    def delete(self, name: str) -> VoiceInfo | None:
        """Remove a voice (metadata first, so it disappears atomically) and its audio.

        A voice with damaged metadata is deleted too (returns None): it is the way to be rid of
        one. Only files in the voice's own folder are touched, whatever its metadata names, so a
        damaged or forged ``audio_key`` cannot delete another voice's audio.
        """
        name = check_voice_name(name)
        try:
            data = self.storage.get(self._meta_key(name))
        except NotFound:
            raise JobError("name", f"no voice named {name!r}") from None
        except StorageError as exc:
            raise self._storage_error(exc, f"could not read voice {name!r}") from None
        try:
            info = VoiceInfo.from_json(data, name)
            audio_key = info.audio_key
        except DamagedVoice:
            info, audio_key = None, _audio_key_of_damaged(data, name)
        try:
            self.storage.delete(self._meta_key(name))
        except StorageError as exc:
            raise self._storage_error(exc, f"could not delete voice {name!r}") from None
        self._forget(name)
        self._tidy(name, keep=None, unused=audio_key)
        return info

    # --- read -----------------------------------------------------------------
    def _read_info(self, name: str, damaged_ok: bool = False, field: str = "voice") -> VoiceInfo | None:
        """The voice's metadata, None if there is no such voice (or, with ``damaged_ok``, if it is unreadable)."""
        try:
            data = self.storage.get(self._meta_key(name))
        except NotFound:
            return None
        except StorageError as exc:
            raise self._storage_error(exc, f"could not read voice {name!r}") from None
        try:
            return VoiceInfo.from_json(data, name)
        except DamagedVoice as exc:
            if damaged_ok:
                return None
            raise _damaged(field, name, f"metadata ({exc})") from None

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

    def load(self, name: str, field: str = "voice", info: VoiceInfo | None = None) -> StoredVoice:
        """The voice's audio and text; served from memory while its version is unchanged.

        ``info``: the voice's metadata where the job has read it already (``VoiceStore.info``), so a job reads it once;
        it is read again only if the audio it names is gone (the voice was replaced in between). The job chose its
        model and language by that reading, so a voice replaced by one that keeps another model or language fails
        the job (sent again, it reads the new voice) rather than speak the new audio with the old choice."""
        read_by_job = info
        for _attempt in range(3):
            info = info if info is not None else self.info(name, field)
            if read_by_job is not None and (info.model, info.language) != (read_by_job.model, read_by_job.language):
                raise JobError(field, f"voice {name!r} was replaced while this job was starting, and now keeps "
                                      f"model {info.model!r} and language {info.language!r} (it kept "
                                      f"{read_by_job.model!r} and {read_by_job.language!r}); send the job again")
            with self._lock:
                cached = self._voices.peek(name)
                if cached is not None and cached.info.version == info.version:
                    return self._voices.get(name)
            try:
                data = self.storage.get(info.audio_key)
            except NotFound:
                info = None  # replaced between reading metadata and audio: read the new metadata
                continue
            except StorageError as exc:
                raise self._storage_error(exc, f"could not load voice {name!r}") from None
            try:  # the stored audio is checked like any input: another tool may have replaced it
                decoded = audio.decode(data, field, self.max_input_seconds)
                wave = audio.resample(decoded.wave, decoded.sample_rate, audio.TARGET_SAMPLE_RATE)
            except JobError as exc:
                raise _damaged(field, name, f"audio ({exc.problem})") from None
            try:  # and its transcript as a request's: it may predate a rule, or have been edited since
                check_reference_rate(info.ref_text, len(wave) / audio.TARGET_SAMPLE_RATE)
            except JobError as exc:
                raise JobError(field, f"voice {name!r} cannot be used: its ref_text {exc.problem}; upload it "
                                      "again with overwrite: true and the transcript of its audio") from None
            voice = StoredVoice(info, wave)
            with self._lock:
                self._drop_prepared(name)
                self._voices.put(name, voice)  # the least recently used voice out, with its prepared forms
            return voice
        raise _damaged(field, name, "audio (missing)")

    def prepared(self, name: str, variant: Hashable, build: Callable[[StoredVoice], Any], field: str = "voice",
                 info: VoiceInfo | None = None) -> Any:
        """``build(voice)`` computed once per voice version and ``variant`` (e.g. the job's target RMS);
        ``info`` as for ``load``.

        At most ``PREPARED_PER_VOICE`` × ``cache_size`` are kept in all, least recently used
        out first: a variant is any float a caller sends, and each one holds a prepared
        reference (its mels on the GPU once sampled), so they must not pile up.
        """
        voice = self.load(name, field, info)
        key = (name, voice.info.version, variant)
        value = self._prepared.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = build(voice)
        with self._lock:
            current = self._voices.peek(name)
            if current is not None and current.info.version == voice.info.version:  # not replaced meanwhile
                self._prepared.put(key, value)
        return value

    def _drop_prepared(self, name: str) -> None:
        self._prepared.drop_where(lambda key: key[0] == name)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._voices.pop(name)
            self._drop_prepared(name)
