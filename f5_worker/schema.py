"""Job input models (pydantic v2): one model per ``action``, unknown fields refused.

``parse_job`` turns a raw ``job["input"]`` into one of these or raises a
JobError whose message names the field and the problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from f5_worker.errors import JobError

MAX_TEXT_CHARS = 5000
MAX_SEED = 2**63 - 1
CAPTION_FORMATS = ("json", "srt", "vtt", "ass", "csv")

OutputFormat = Literal["wav", "flac", "mp3", "opus", "pcm"]
CaptionFormat = Literal["json", "srt", "vtt", "ass", "csv"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, allow_inf_nan=False)


class ReferenceAudio(_Request):
    """Where a job's reference voice comes from (at most one source)."""

    voice: str | None = Field(None, min_length=1, max_length=64)
    ref_audio_url: str | None = Field(None, min_length=1, max_length=4096)
    ref_audio_base64: str | None = Field(None, min_length=1)
    ref_text: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _one_source(self):
        given = [n for n in ("voice", "ref_audio_url", "ref_audio_base64") if getattr(self, n) is not None]
        if len(given) > 1:
            raise JobError(given[1], f"give only one of voice, ref_audio_url, ref_audio_base64 (got {', '.join(given)})")
        if given and given[0] != "voice" and not (self.ref_text and self.ref_text.strip()):
            raise JobError("ref_text", f"is required with {given[0]}: the transcript of the reference audio")
        if given == ["voice"] and self.ref_text is not None:
            raise JobError("ref_text", "does not apply with voice: a stored voice keeps its own transcript")
        if not given and self.ref_text is not None:
            raise JobError("ref_text", "only applies with ref_audio_url or ref_audio_base64")
        return self


class TimingOptions(_Request):
    word_timings: bool = True
    char_timings: bool = False
    caption_formats: list[CaptionFormat] = Field(default_factory=lambda: ["srt"], max_length=len(CAPTION_FORMATS))
    max_chars_per_line: int = Field(42, ge=10, le=200)
    max_lines: int = Field(2, ge=1, le=4)
    max_caption_seconds: float = Field(6.0, ge=0.5, le=30.0)


class SynthesizeRequest(ReferenceAudio, TimingOptions):
    action: Literal["synthesize"] = "synthesize"
    text: str = Field(..., max_length=MAX_TEXT_CHARS)
    speed: float = Field(1.0, ge=0.3, le=3.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    nfe_step: int = Field(32, ge=4, le=128)
    cfg_strength: float = Field(2.0, ge=0.0, le=10.0)
    sway_sampling_coef: float = Field(-1.0, ge=-1.0, le=1.0)
    cross_fade_duration: float = Field(0.15, ge=0.0, le=1.0)
    remove_silence: bool = False
    target_rms: float = Field(0.1, ge=0.01, le=1.0)
    output_format: OutputFormat = "wav"
    output: Literal["inline", "bucket", "auto"] = "auto"  # README: "Result delivery"
    max_retries: int = Field(2, ge=0, le=5)

    @model_validator(mode="after")
    def _text_has_words(self):
        if not self.text.strip():
            raise JobError("text", "is empty")
        if not any(ch.isalnum() for ch in self.text):
            raise JobError("text", "has no letters or digits to speak")
        return self


class HealthRequest(_Request):
    action: Literal["health"]


ACTIONS: dict[str, type[_Request]] = {"synthesize": SynthesizeRequest, "health": HealthRequest}


def register_action(name: str, model: type[_Request]) -> None:
    """Other modules add their actions here (align, voices...) so the handler stays one table."""
    ACTIONS[name] = model


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "input"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown field"
    if kind == "missing":
        return f"{loc}: is required"
    msg = error["msg"]
    for prefix, replacement in (("Input should be ", "must be "), ("String should have ", "must have "),
                                ("List should have ", "must have "), ("Value error, ", "")):
        if msg.startswith(prefix):
            msg = replacement + msg.removeprefix(prefix)
            break
    return f"{loc}: {msg}"


def parse_job(raw: Any) -> _Request:
    """Validate a job's input. Raises JobError naming the first bad field(s)."""
    if not isinstance(raw, dict):
        raise JobError("input", "must be a JSON object")
    action = raw.get("action", "synthesize")
    if not isinstance(action, str) or action not in ACTIONS:
        raise JobError("action", f"unknown action {action!r}; use one of {', '.join(sorted(ACTIONS))}")
    model = ACTIONS[action]
    try:
        return model.model_validate(raw)  # JobErrors from validators pass through unchanged
    except ValidationError as exc:
        raise JobError(*_describe(exc.errors(include_url=False)[0]).split(": ", 1)) from None
