"""The worker's own HTTP server (``SERVE=http``): an OpenAI-compatible front door over one Worker.

For RunPod's load-balancing endpoints (the worker is reached directly over HTTP, no queue in between) and any
other host. Routes (docs/http.md): ``GET /ping`` (RunPod's health contract: 204 while the models load, 200 once
ready), ``GET /health`` (the ``health`` action's body), ``POST /v1/audio/speech`` (OpenAI's speech route, the
whole audio file as the body), ``GET /v1/models`` (OpenAI's list) and ``POST /v1/synthesize`` (a native job's
input in, its native result out).

The app exists before its Worker: ``create_app(load)`` starts ``load`` in a thread once the server runs, so
``/ping`` answers while the models load. Every job runs in a thread (the worker's synchronous calls), never
on the event loop. A body that is too large, not JSON or not sent as JSON is refused before any work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from f5_worker import schema, stopping
from f5_worker.errors import JobError
from f5_worker.job import Job
from f5_worker.limits import is_default_voice
from f5_worker.worker import Worker

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's limit on a load-balancing endpoint's request
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
SPEECH_FIELDS = ("model", "input", "voice", "response_format", "speed", "instructions", "stream_format")
# A native field named in an error -> the speech request's field it came from.
SPEECH_FIELD_NAMES = {"text": "input", "output_format": "response_format"}


class ApiError(Exception):
    """A request refused: its HTTP status, message, and the field it names (``param``)."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def openai(self) -> JSONResponse:
        """OpenAI's error object, so its SDKs raise BadRequestError (and the like) with the message."""
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=_retry_after(self.status))

    def native(self) -> JSONResponse:
        """The queue worker's error form: ``{"error": "<field>: <problem>"}``."""
        text = f"{self.param}: {self.message}" if self.param and not self.message.startswith(self.param) \
            else self.message
        return JSONResponse({"error": text}, status_code=self.status, headers=_retry_after(self.status))


def _retry_after(status: int) -> dict[str, str]:
    return {"Retry-After": "5"} if status == 503 else {}


def _from_job_error(exc: JobError, names: dict[str, str] | None = None) -> ApiError:
    field = (names or {}).get(exc.field, exc.field)
    return ApiError(400, f"{field}: {exc.problem}", param=field)


@dataclass
class Loading:
    """The Worker the app serves, once loaded; ``failed``: why it could not be."""

    worker: Worker | None = None
    failed: str | None = None


def create_app(load: Callable[[], Worker] | None = None, *, worker: Worker | None = None,
               on_load_failure: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The app over ``worker``, or over the Worker ``load`` returns (called in a thread once the server runs)."""
    state = Loading(worker=worker)

    def load_in_thread() -> None:
        try:
            state.worker = load()
            log.info("the HTTP server is ready")
        except BaseException as exc:  # noqa: BLE001 - /ping then answers 503, and the boot stops the server
            state.failed = f"{type(exc).__name__}: {exc}"
            log.error("cannot start: %s", exc)
            if on_load_failure is not None:
                on_load_failure(exc)

    async def lifespan(app: FastAPI):
        if state.worker is None and load is not None:
            threading.Thread(target=load_in_thread, name="load-worker", daemon=True).start()
        yield

    app = FastAPI(title="f5-worker", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.loading = state

    def ready() -> Worker:
        if state.worker is None:
            why = f"the worker could not start ({state.failed})" if state.failed else "the models are still loading"
            raise ApiError(503, f"{why}; try again shortly", kind="server_error", code="not_ready")
        return state.worker

    @app.get("/ping")
    async def ping() -> Response:
        if state.worker is not None:
            return JSONResponse({"status": "healthy"})
        if state.failed is not None:
            return JSONResponse({"status": "failed", "error": state.failed}, status_code=503)
        return Response(status_code=204)

    @app.get("/health")
    async def health() -> Response:
        try:
            worker = ready()
        except ApiError as exc:
            return exc.native()
        return JSONResponse(await asyncio.to_thread(worker.handle, {"action": "health"}, _job_id()))

    @app.get("/v1/models")
    async def models() -> Response:
        try:
            worker = ready()
        except ApiError as exc:
            return exc.openai()
        names = list(worker.registry.names())
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "f5-worker"} for name in names]
        data += [{"id": name, "object": "model", "created": 0, "owned_by": "f5-worker",
                  "alias_of": worker.pool.default} for name in OPENAI_MODELS if name not in names]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        try:
            body = await _json_object(request)
            worker = ready()
            job_id = _job_id()
            audio, content_type, headers = await asyncio.to_thread(_speak, worker, body, job_id)
        except ApiError as exc:
            return exc.openai()
        return Response(audio, media_type=content_type, headers={**headers, "X-Job-Id": job_id})

    @app.post("/v1/synthesize")
    async def synthesize(request: Request) -> Response:
        try:
            body = await _json_object(request)
            worker = ready()
        except ApiError as exc:
            return exc.native()
        result = await asyncio.to_thread(worker.handle, body, _job_id())
        if isinstance(result, dict) and "error" in result:
            status = 500 if str(result["error"]).startswith("internal:") else 400
            return JSONResponse({"error": result["error"]}, status_code=status)
        return JSONResponse(result)

    return app


def _job_id() -> str:
    return f"http-{uuid.uuid4().hex[:16]}"


async def _json_object(request: Request) -> dict:
    """The request's body as a JSON object, or an ApiError, read no further than MAX_BODY_BYTES."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (got {kind or 'none'!r})")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


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
    stream_format = body.get("stream_format", "audio")
    if stream_format != "audio":
        raise ApiError(400, f"stream_format: only 'audio' is served (got {stream_format!r}); sse is not yet "
                            "available", param="stream_format", code="unsupported_value")
    native: dict[str, Any] = {"action": "synthesize", "text": body["input"], "output_format": SPEECH_FORMATS[fmt]}
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


def _speak(worker: Worker, body: dict, job_id: str) -> tuple[bytes, str, dict[str, str]]:
    """One speech request, in a thread: its audio, content type and headers, or an ApiError."""
    native, openai_voice = speech_input(body)
    headers = {}
    try:
        if openai_voice is not None:  # a stored voice of that name wins; else the default voice
            if _stored_voice(worker, openai_voice):
                native["voice"] = openai_voice
            headers["X-Voice"] = native.get("voice", "default")
        request = schema.parse_job(native)
        speech = worker.synthesis.speak(request, Job(job_id))
    except JobError as exc:
        raise _from_job_error(exc, SPEECH_FIELD_NAMES) from None
    except stopping.JobStopped as exc:
        raise ApiError(503, str(exc), kind="server_error") from None
    except MemoryError:
        log.exception("job %s ran out of memory", job_id)
        raise ApiError(500, "internal: out of memory; try a shorter input", kind="server_error") from None
    except Exception as exc:  # noqa: BLE001 - the worker's failure policy, as for a queue job
        raise ApiError(500, worker.failure(exc, job_id)["error"], kind="server_error") from None
    headers["X-Model"] = speech.model
    return speech.audio, speech.content_type, headers


def _stored_voice(worker: Worker, name: str) -> bool:
    try:
        worker.voices.info(name)
    except JobError:
        return False
    return True


def listening_sockets(port: int, port_health: int = 0, host: str = "0.0.0.0") -> list[socket.socket]:
    """The server's sockets: PORT, and PORT_HEALTH when it is another port (both serve every route)."""
    ports = [port] + ([port_health] if port_health and port_health != port else [])
    sockets = []
    for number in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, number))
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def serve(port: int, port_health: int, load: Callable[[], Worker]) -> int:
    """Run the server until it is stopped; the exit status: 0, or 2 when the worker could not start."""
    import uvicorn

    outcome = {"status": 0}
    server: uvicorn.Server | None = None

    def stop(exc: BaseException) -> None:
        outcome["status"] = 2
        if server is not None:
            server.should_exit = True

    app = create_app(load, on_load_failure=stop)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=30))
    sockets = listening_sockets(port, port_health)
    log.info("HTTP server on port%s %s", "s" if len(sockets) > 1 else "",
             " and ".join(str(s.getsockname()[1]) for s in sockets))
    server.run(sockets=sockets)
    return outcome["status"]
