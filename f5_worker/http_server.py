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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from f5_worker import schema, stopping
from f5_worker.errors import JobError
from f5_worker.http_auth import EXCEPTION_HANDLERS, token_dependencies
from f5_worker.job import Job
from f5_worker.openai_speech import (
    OPENAI_MODELS,
    SPEECH_FIELD_NAMES,
    ApiError,
    from_job_error,
    speech_input,
)
from f5_worker.worker import Worker

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's limit on a load-balancing endpoint's request
@dataclass
class Loading:
    """The Worker the app serves, once loaded; ``failed``: why it could not be."""

    worker: Worker | None = None
    failed: str | None = None


def create_app(load: Callable[[], Worker] | None = None, *, worker: Worker | None = None,
               on_load_failure: Callable[[BaseException], None] | None = None,
               api_token: str | None = None) -> FastAPI:
    """The app over ``worker``, or over the Worker ``load`` returns (called in a thread once the server runs);
    with ``api_token``, every route but /ping needs it as a bearer token (http_auth.py)."""
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

    app = FastAPI(title="f5-worker", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  dependencies=token_dependencies(api_token), exception_handlers=EXCEPTION_HANDLERS)
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
            return _native_error(exc)
        return JSONResponse(await asyncio.to_thread(worker.handle, {"action": "health"}, _job_id()))

    @app.get("/v1/models")
    async def models() -> Response:
        try:
            worker = ready()
        except ApiError as exc:
            return _openai_error(exc)
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
            return _openai_error(exc)
        return Response(audio, media_type=content_type, headers={**headers, "X-Job-Id": job_id})

    @app.post("/v1/synthesize")
    async def synthesize(request: Request) -> Response:
        try:
            body = await _json_object(request)
            worker = ready()
        except ApiError as exc:
            return _native_error(exc)
        result = await asyncio.to_thread(worker.handle, body, _job_id())
        if isinstance(result, dict) and "error" in result:
            status = 500 if str(result["error"]).startswith("internal:") else 400
            return JSONResponse({"error": result["error"]}, status_code=status)
        return JSONResponse(result)

    return app


def _openai_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.openai_body(), status_code=exc.status, headers=_retry_after(exc.status))


def _native_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.native_body(), status_code=exc.status, headers=_retry_after(exc.status))


def _retry_after(status: int) -> dict[str, str]:
    return {"Retry-After": "5"} if status == 503 else {}


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
    blocks, size = [], 0
    async for block in request.stream():
        size += len(block)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        blocks.append(block)
    try:
        body = json.loads(b"".join(blocks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


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
        raise from_job_error(exc, SPEECH_FIELD_NAMES) from None
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


def serve(port: int, port_health: int, load: Callable[[], Worker], api_token: str | None = None) -> int:
    """Run the server until it is stopped; the exit status: 0, or 2 when the worker could not start."""
    import uvicorn

    outcome = {"status": 0}
    server: uvicorn.Server | None = None

    def stop(exc: BaseException) -> None:
        outcome["status"] = 2
        if server is not None:
            server.should_exit = True

    app = create_app(load, on_load_failure=stop, api_token=api_token)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=30))
    sockets = listening_sockets(port, port_health)
    log.info("HTTP server on port%s %s", "s" if len(sockets) > 1 else "",
             " and ".join(str(s.getsockname()[1]) for s in sockets))
    if api_token:
        log.info("every route but /ping needs the bearer token (API_TOKEN)")
    server.run(sockets=sockets)
    return outcome["status"]
