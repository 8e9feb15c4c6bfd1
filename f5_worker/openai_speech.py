"""OpenAI's speech API in the worker's terms: a ``/v1/audio/speech`` body as a native synthesize job's input,
the ``/v1/models`` list, and a refusal as OpenAI's error object.

One home for the mapping (docs/http.md) that every front door speaking OpenAI's dialect shares: the HTTP
server (http_server.py) and, on a queue endpoint, RunPod's ``openai_route`` jobs (actions/openai_routes.py).
Nothing here knows HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from f5_worker import stopping
from f5_worker.errors import JobError, http_status
from f5_worker.limits import is_default_voice

# OpenAI's model names: each means this worker's default model.
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's built-in voices: a stored voice of that name if there is one, else the default voice.
OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
# OpenAI's response_format -> the encoders' format (audio.py); aac is refused: libsndfile cannot write it.
SPEECH_FORMATS = {"mp3": "mp3", "opus": "opus", "flac": "flac", "wav": "wav", "pcm": "pcm"}
# The native synthesize fields a speech request may also give (an extension: the OpenAI SDK's extra_body).
SPEECH_EXTENSIONS = ("seed", "nfe_step", "cfg_strength", "sway_sampling_coef", "language", "normalize",
                     "remove_silence", "cross_fade_duration", "target_rms")
SPEECH_FIELDS = ("model", "input", "voice", "response_format", "speed", "instructions", "stream_format",
                 "timestamp_granularities")  # the last is ours: word timings, as OpenAI's transcription asks
# stream_format: "audio" sends the audio as it is made (chunked), "sse" OpenAI's speech events; absent, the
# whole file at once.
STREAM_FORMATS = ("audio", "sse")
# timestamp_granularities: each one asked -> the native flag that gives it ("words", "chars" in the answer).
TIMESTAMP_GRANULARITIES = {"word": "word_timings", "character": "char_timings"}
# A native field named in an error -> the speech request's field it came from.
SPEECH_FIELD_NAMES = {"text": "input", "output_format": "response_format"}
OUT_OF_MEMORY = "internal: out of memory; try a shorter input"
OWNER = "f5-worker"  # owned_by of every model in /v1/models


class Voices(Protocol):
    def info(self, name: str) -> dict: ...  # a stored voice's description, or JobError where none has ``name``


class ApiError(Exception):
    """A request refused: its HTTP status, message, and the field it names (``param``)."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def openai_body(self) -> dict:
        """OpenAI's error object, so its SDKs raise BadRequestError (and the like) with the message."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def native_body(self) -> dict:
        """The queue worker's error form: ``{"error": "<field>: <problem>"}``."""
        text = f"{self.param}: {self.message}" if self.param and not self.message.startswith(self.param) \
            else self.message
        return {"error": text}


def from_job_error(exc: JobError, names: dict[str, str] | None = None) -> ApiError:
    """The refusal as the speech request names things: its field, and any native field the problem names
    (``use output_format mp3/opus`` is ``use response_format mp3/opus`` here). The worker's storage failing
    is no fault of the request's: a 503 server_error (errors.http_status)."""
    names = names or {}
    field, problem = names.get(exc.field, exc.field), exc.problem
    for native, own in names.items():
        if "_" in native:  # a field's name, never a word of the prose ("text")
            problem = re.sub(rf"\b{native}\b", own, problem)
    if http_status(str(exc)) == 503:
        return ApiError(503, f"{field}: {problem}", param=field, kind="server_error")
    return ApiError(400, f"{field}: {problem}", param=field)


def refusal(exc: Exception, failure: Callable[[Exception], dict]) -> ApiError:
    """What an OpenAI route answers for an exception its job raised, on every front door: a JobError names
    the field as the speech request names it (``input``, not ``text``); a stopped job is a 503; running out
    of memory and any other failure a 500, the latter with the message of ``failure`` (the worker's failure
    policy, which logs it and tells a CUDA failure)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, JobError):
        return from_job_error(exc, SPEECH_FIELD_NAMES)
    if isinstance(exc, stopping.JobStopped):
        return ApiError(503, str(exc), kind="server_error")
    if isinstance(exc, MemoryError):
        return ApiError(500, OUT_OF_MEMORY, kind="server_error")
    return ApiError(500, failure(exc)["error"], kind="server_error")


def model_list(names: Iterable[str], default: str) -> dict:
    """OpenAI's ``/v1/models``: every registered model, then OpenAI's names with the model they stand for."""
    names = list(names)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": OWNER} for name in names]
    data += [{"id": name, "object": "model", "created": 0, "owned_by": OWNER, "alias_of": default}
             for name in OPENAI_MODELS if name not in names]
    return {"object": "list", "data": data}


def from_native_error(error: str) -> ApiError:
    """A native job's ``{"error": "<field>: <problem>"}`` as OpenAI's error, the field named as the speech
    request names it; the worker's own failures (``internal:``) are 500s, a stopped job and the worker's
    storage failing 503s (errors.http_status)."""
    field, _, problem = error.partition(": ")
    status = http_status(error)
    if field in ("internal", "stopped"):
        return ApiError(status, error, kind="server_error")
    field = SPEECH_FIELD_NAMES.get(field, field)
    return ApiError(status, f"{field}: {problem}", param=field,
                    kind="server_error" if status >= 500 else "invalid_request_error")


def timestamp_granularities(body: dict) -> tuple[str, ...]:
    """The timings a (checked) speech request asks for: ``()``, ``("word",)``, ``("character",)`` or both."""
    return tuple(body.get("timestamp_granularities") or ())


def speech_input(body: dict) -> tuple[dict, str | None]:
    """An OpenAI speech request as a native synthesize job's input; also the OpenAI voice name that, where
    no stored voice has it, stands for the default voice (None when the request names no such voice)."""
    unknown = [k for k in body if k not in SPEECH_FIELDS and k not in SPEECH_EXTENSIONS]
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field; this route takes {', '.join(SPEECH_FIELDS)} and the "
                            f"extensions {', '.join(SPEECH_EXTENSIONS)}", param=unknown[0])
    for name in ("model", "input", "voice"):
        if name not in body:
            raise ApiError(400, f"{name}: is required", param=name)
        if not isinstance(body[name], str):
            raise ApiError(400, f"{name}: must be a string", param=name)
    fmt = body.get("response_format", "mp3")
    if not isinstance(fmt, str):
        raise ApiError(400, f"response_format: must be one of {', '.join(SPEECH_FORMATS)}", param="response_format")
    if fmt == "aac":
        raise ApiError(400, "response_format: aac is not available (the worker's encoders cannot write it); use "
                            f"one of {', '.join(SPEECH_FORMATS)}", param="response_format", code="unsupported_value")
    if fmt not in SPEECH_FORMATS:
        raise ApiError(400, f"response_format: must be one of {', '.join(SPEECH_FORMATS)} (got {fmt!r})",
                       param="response_format")
    if body.get("instructions"):
        raise ApiError(400, "instructions: not supported; F5-TTS takes its manner of speaking from the voice's "
                            "reference audio: pick (or upload) a voice that sounds the way you want, and leave "
                            "instructions out", param="instructions", code="unsupported_value")
    stream_format = body.get("stream_format")
    if stream_format is not None and stream_format not in STREAM_FORMATS:
        raise ApiError(400, f"stream_format: must be one of {', '.join(STREAM_FORMATS)} (got {stream_format!r})",
                       param="stream_format", code="unsupported_value")
    native: dict[str, Any] = {"action": "synthesize", "text": body["input"], "output_format": SPEECH_FORMATS[fmt]}
    native.update(_timings(body.get("timestamp_granularities"), stream_format))
    model = body["model"]
    if model not in OPENAI_MODELS:
        native["model"] = model
    voice, openai_voice = body["voice"], None
    if body["voice"].lower() in OPENAI_VOICES:
        openai_voice = voice
    elif not is_default_voice(voice):
        native["voice"] = voice
    if "speed" in body:
        native["speed"] = body["speed"]
    native.update({k: body[k] for k in SPEECH_EXTENSIONS if k in body})
    return native, openai_voice


def _timings(granularities: Any, stream_format: str | None) -> dict[str, bool]:
    """The native timing flags for ``timestamp_granularities``; none where it is absent or empty."""
    if granularities is None:
        return {}
    names = ", ".join(repr(name) for name in TIMESTAMP_GRANULARITIES)
    if not isinstance(granularities, list) or not all(isinstance(g, str) for g in granularities):
        raise ApiError(400, f"timestamp_granularities: must be a list of {names}", param="timestamp_granularities")
    unknown = [g for g in granularities if g not in TIMESTAMP_GRANULARITIES]
    if unknown:
        raise ApiError(400, f"timestamp_granularities: {unknown[0]!r} is not one of {names}",
                       param="timestamp_granularities", code="unsupported_value")
    if not granularities:
        return {}
    if stream_format == "audio":
        raise ApiError(400, "timestamp_granularities: not available with stream_format 'audio' (raw audio has "
                            "nowhere to carry timings); use stream_format 'sse' for timings with each piece, or "
                            "leave stream_format out for one JSON answer", param="timestamp_granularities",
                       code="unsupported_value")
    return {flag: name in granularities for name, flag in TIMESTAMP_GRANULARITIES.items()}


def choose_voice(voices: Voices, native: dict, openai_voice: str | None) -> str:
    """The voice that speaks, set in ``native`` (the job speech_input made): for an OpenAI voice name the stored
    voice of that name where there is one, else the default voice; ``default`` or the stored voice's name."""
    if openai_voice is not None:
        try:
            voices.info(openai_voice)
            native["voice"] = openai_voice
        except JobError:
            pass
    return native.get("voice", "default")
