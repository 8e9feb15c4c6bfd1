"""Every job input the worker accepts (pydantic v2): one model per ``action``, unknown fields refused.

All request models are declared here, and ``ACTIONS`` is a plain table of
them, so what a job may say does not depend on which modules were imported.
A queue endpoint's OpenAI route (``openai_route``, docs/http.md) is a job of
its own kind, not an action: ``OpenAIRouteRequest``.
``parse_job`` turns a raw ``job["input"]`` into one of these or raises a
JobError whose message names the field and the problem. docs/api.md describes
each field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError, model_validator

from f5_worker.errors import JobError
from f5_worker.limits import (
    CAPTION_FORMATS,
    DEFAULT_VOICE,
    LANGUAGE_TAG,
    MAX_REF_TEXT_CHARS,
    MAX_SEED,
    MAX_SPEED,
    MAX_VOICE_NAME_CHARS,
    MIN_SPEED,
    OUTPUT_FORMATS,
    check_voice_name,
    is_default_voice,
)
from f5_worker.logs import echo, shorten

MAX_TEXT_CHARS = 5000  # characters of text to speak or align in one job
MAX_URL_CHARS = 4096
MAX_ROUTE_CHARS = 200  # of an OpenAI route's path, e.g. /v1/audio/speech
OPENAI_ROUTE = "openai_route"  # the dispatch key of a queue endpoint's OpenAI route jobs (OpenAIRouteRequest)
MAX_DURATION_S = 1200.0  # seconds, the longest ``duration`` a job may ask for
_LANGUAGE_TAG = re.compile(LANGUAGE_TAG)


def _json_number(kind: str):
    """A check, before pydantic's, that the value is a JSON number: pydantic's lax mode reads JSON's ``true`` and
    ``"42"`` as 1 and 42, and a client that sends them has a bug that a guess hides (``"duration": true``
    made one second of audio)."""
    def check(value: Any) -> Any:
        if isinstance(value, bool | str):
            raise ValueError(f"must be a valid {kind}, not {'a string' if isinstance(value, str) else 'true or false'}")
        return value
    return BeforeValidator(check)


Number = Annotated[float, _json_number("number")]  # a JSON number (an integral one too)
Integer = Annotated[int, _json_number("integer")]  # a JSON number without a fraction (32 or 32.0)
Flag = Annotated[bool, Strict()]  # JSON's true or false; not 1, "yes" or "true"
OutputFormat = Literal[OUTPUT_FORMATS]  # the encoders' formats (audio.py)
CaptionFormat = Literal[CAPTION_FORMATS]  # the caption renderers' formats (captions.py)
OutputMode = Literal["inline", "bucket", "auto"]  # docs/api.md, "Result delivery"
OUTPUT_MODES: tuple[str, ...] = get_args(OutputMode)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, allow_inf_nan=False)


class _ReferenceFields(_Request):
    voice: str | None = Field(None, min_length=1, max_length=MAX_VOICE_NAME_CHARS)
    ref_audio_url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    ref_audio_base64: str | None = Field(None, min_length=1)
    ref_text: str | None = Field(None, max_length=MAX_REF_TEXT_CHARS)

    def check_one_source(self, prefix: str = "") -> None:
        """At most one source, and ``ref_text`` exactly where a clip needs it; ``prefix`` places the
        fields in the request (``segments.1.``)."""
        given = [n for n in ("voice", "ref_audio_url", "ref_audio_base64") if getattr(self, n) is not None]
        if len(given) > 1:
            raise JobError(prefix + given[1],
                           f"give only one of voice, ref_audio_url, ref_audio_base64 (got {', '.join(given)})")
        if given and given[0] != "voice" and not (self.ref_text and self.ref_text.strip()):
            raise JobError(prefix + "ref_text", f"is required with {given[0]}: the transcript of the reference audio")
        if given == ["voice"] and self.ref_text is not None:
            raise JobError(prefix + "ref_text", "does not apply with voice: a stored voice keeps its own transcript")
        if not given and self.ref_text is not None:
            raise JobError(prefix + "ref_text", "only applies with ref_audio_url or ref_audio_base64")


class ReferenceAudio(_ReferenceFields):
    """Where a job's reference voice comes from (at most one source)."""

    @model_validator(mode="after")
    def _one_source(self):
        self.check_one_source()
        return self


class ScriptSegment(_ReferenceFields):
    """One speaker's turn in ``segments``: its text, and its voice given as a request's is (none: the
    request's own voice). Checked by the request, so errors name the segment."""

    text: str = Field(..., max_length=MAX_TEXT_CHARS)
    speed: Number | None = Field(None, ge=MIN_SPEED, le=MAX_SPEED)  # None: the request's speed


class TimingOptions(_Request):
    word_timings: Flag = True
    char_timings: Flag = False
    caption_formats: list[CaptionFormat] = Field(default_factory=lambda: ["srt"], max_length=len(CAPTION_FORMATS))
    max_chars_per_line: Integer = Field(42, ge=10, le=200)
    max_lines: Integer = Field(2, ge=1, le=4)
    max_caption_seconds: Number = Field(6.0, ge=0.5, le=30.0)


class SynthesizeRequest(ReferenceAudio, TimingOptions):
    action: Literal["synthesize"] = "synthesize"
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS)  # or segments (docs/api.md, "Scripts")
    # at most MAX_SEGMENTS (a setting, checked by the action); here only what the text bound allows
    segments: list[ScriptSegment] | None = Field(None, max_length=MAX_TEXT_CHARS)  # empty: refused in _valid
    language: str | None = Field(None, min_length=2, max_length=16)  # None: guessed from the text's writing system
    normalize: Flag = True  # numbers, symbols and abbreviations spoken as words before synthesis
    duration: Number | None = Field(None, gt=0.0, le=MAX_DURATION_S)  # seconds of audio in all; sets the speed
    speed: Number = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)
    seed: Integer | None = Field(None, ge=0, le=MAX_SEED)
    nfe_step: Integer = Field(32, ge=4, le=128)
    cfg_strength: Number = Field(2.0, ge=0.0, le=10.0)
    sway_sampling_coef: Number = Field(-1.0, ge=-1.0, le=1.0)
    cross_fade_duration: Number = Field(0.15, ge=0.0, le=1.0)
    remove_silence: Flag = False
    target_rms: Number = Field(0.1, ge=0.01, le=1.0)
    output_format: OutputFormat = "wav"
    output: OutputMode = "auto"
    max_retries: Integer = Field(2, ge=0, le=5)
    stream: Flag = False  # pieces as they are made, through RunPod's /stream (docs/api.md, "Streaming")
    model: str | None = Field(None, min_length=1, max_length=64)  # None: the voice's model, else the default

    @model_validator(mode="after")
    def _valid(self):
        if self.text is None and self.segments is None:
            raise JobError("text", "is required (or segments)")
        if self.text is not None and self.segments is not None:
            raise JobError("segments", "give either text or segments, not both")
        if self.segments is not None and not self.segments:
            raise JobError("segments", "is empty; give at least one segment, or text")
        if self.text is not None:
            _check_text(self.text, "speak")
        for n, segment in enumerate(self.segments or []):
            segment.check_one_source(f"segments.{n}.")
            _check_text(segment.text, "speak", f"segments.{n}.text")
        if self.segments and sum(len(s.text) for s in self.segments) > MAX_TEXT_CHARS:
            raise JobError("segments", f"hold more than {MAX_TEXT_CHARS} characters of text together")
        _check_language(self.language)
        if self.duration is not None:
            if "speed" in self.model_fields_set or any(s.speed is not None for s in self.segments or []):
                raise JobError("duration", "sets the speed itself: give either duration or speed")
            if self.remove_silence:
                raise JobError("duration", "cannot be combined with remove_silence, which shortens the audio")
            if self.stream:
                raise JobError("duration", "is not available with stream: the length of the whole is not known "
                                           "while its first pieces are sent")
        return self

    @property
    def script_text(self) -> str:
        """All the text to speak, for bounds and estimates: ``text``, or the segments' texts together."""
        return self.text if self.text is not None else "\n".join(s.text for s in self.segments)


class AlignRequest(TimingOptions):
    action: Literal["align"]
    text: str = Field(..., max_length=MAX_TEXT_CHARS)
    audio_url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    audio_base64: str | None = Field(None, min_length=1)
    language: str | None = Field(None, min_length=2, max_length=16)  # None: guessed from the text's writing system

    @model_validator(mode="after")
    def _valid(self):
        if (self.audio_url is None) == (self.audio_base64 is None):
            raise JobError("audio_base64", "give exactly one of audio_url or audio_base64")
        _check_text(self.text, "align")
        _check_language(self.language)
        return self


class _NamedVoice(_Request):
    name: str

    @model_validator(mode="after")
    def _safe_name(self):
        check_voice_name(self.name, "name")
        return self


class UploadVoiceRequest(_NamedVoice):
    action: Literal["upload_voice"]
    audio_url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    audio_base64: str | None = Field(None, min_length=1)
    ref_text: str | None = Field(None, max_length=MAX_REF_TEXT_CHARS)
    overwrite: Flag = False
    model: str | None = Field(None, min_length=1, max_length=64)  # the model jobs with this voice use by default
    language: str | None = Field(None, min_length=2, max_length=16)  # the voice's language, e.g. fr

    @model_validator(mode="after")
    def _one_audio(self):
        if is_default_voice(self.name):
            raise JobError("name", f"'{DEFAULT_VOICE}' names F5-TTS's built-in voice in every job; choose another name")
        if (self.audio_url is None) == (self.audio_base64 is None):
            raise JobError("audio_url", "give exactly one of audio_url or audio_base64")
        _check_language(self.language)
        return self


class ListVoicesRequest(_Request):
    action: Literal["list_voices"]


class GetVoiceRequest(_NamedVoice):
    action: Literal["get_voice"]
    include_audio: Flag = False


class DeleteVoiceRequest(_NamedVoice):
    action: Literal["delete_voice"]


class ListModelsRequest(_Request):
    action: Literal["list_models"]


class HealthRequest(_Request):
    action: Literal["health"]


class OpenAIRouteRequest(_Request):
    """An OpenAI route through a queue endpoint: RunPod turns ``https://api.runpod.ai/v2/<id>/openai/v1/...``
    into a job whose input is the route and the request's body (docs/http.md). The body is checked by the
    route, as the HTTP server checks it (openai_speech.py)."""

    action: ClassVar[str] = OPENAI_ROUTE  # how the worker dispatches it; not a field a job gives
    openai_route: str = Field(..., min_length=1, max_length=MAX_ROUTE_CHARS)
    openai_input: dict[str, Any] | None = None  # the body; none (or {}) for a GET such as /v1/models


def is_openai_route(raw: Any) -> bool:
    """Whether a job's input is an OpenAI route's (``openai_route`` and no ``action``), answered in OpenAI's form."""
    return isinstance(raw, dict) and OPENAI_ROUTE in raw and "action" not in raw


def _check_text(text: str, verb: str, field: str = "text") -> None:
    if not text.strip():
        raise JobError(field, "is empty")
    if not any(ch.isalnum() for ch in text):
        raise JobError(field, f"has no letters or digits to {verb}")


def _check_language(language: str | None) -> None:
    if language is not None and not _LANGUAGE_TAG.fullmatch(language):
        raise JobError("language", "must be a language tag such as en, fr or zh-CN")


ACTIONS: dict[str, type[_Request]] = {
    "synthesize": SynthesizeRequest,
    "align": AlignRequest,
    "upload_voice": UploadVoiceRequest,
    "list_voices": ListVoicesRequest,
    "get_voice": GetVoiceRequest,
    "delete_voice": DeleteVoiceRequest,
    "list_models": ListModelsRequest,
    "health": HealthRequest,
}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(field, problem) of pydantic's error; the field cut and escaped: an unknown field's name is the job's."""
    loc = shorten(".".join(str(p) for p in error["loc"])) or "input"
    kind = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown field"
    if kind == "missing":
        return loc, "is required"
    msg = error["msg"]
    for prefix, replacement in (("Input should be ", "must be "), ("String should have ", "must have "),
                                ("List should have ", "must have "), ("Value error, ", "")):
        if msg.startswith(prefix):
            msg = replacement + msg.removeprefix(prefix)
            break
    return loc, shorten(msg, 300)


def parse_job(raw: Any) -> _Request:
    """Validate a job's input. Raises JobError naming the first bad field(s)."""
    if not isinstance(raw, dict):
        raise JobError("input", "must be a JSON object")
    if is_openai_route(raw):
        model = OpenAIRouteRequest
    else:
        action = raw.get("action", "synthesize")
        if not isinstance(action, str) or action not in ACTIONS:
            raise JobError("action", f"unknown action {echo(action)}; use one of {', '.join(sorted(ACTIONS))}")
        model = ACTIONS[action]
    try:
        return model.model_validate(raw)  # JobErrors from validators pass through unchanged
    except ValidationError as exc:
        raise JobError(*_describe(exc.errors(include_url=False)[0])) from None
