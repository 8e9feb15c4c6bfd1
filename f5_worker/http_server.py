"""The worker's own HTTP server (``SERVE=http``): an OpenAI-compatible front door over one Worker.

For RunPod's load-balancing endpoints (the worker is reached directly over HTTP, no queue in between) and any
other host. Routes (docs/http.md): ``GET /ping`` (RunPod's health contract: 204 while the models load, 200 once
ready), ``GET /health`` (the ``health`` action's body), ``POST /v1/audio/speech`` (OpenAI's speech route: the
whole audio file, the audio as it is made, or OpenAI's speech events), ``GET /v1/models`` (OpenAI's list),
``POST /v1/synthesize`` (a native job's input in, its native result, or its streamed items as events, out) and
``GET /`` (the page, f5_worker/page).

The app exists before its Worker: ``create_app(load)`` starts ``load`` in a thread once the server runs, so
``/ping`` answers while the models load. A body that is too large, not JSON or not sent as JSON is refused
before any work; a job the worker has no slot for is refused at once (admission.py). Every job runs in a
thread (the worker's synchronous calls), never on the event loop, under a stop flag: a client that goes away
stops its job, whether it waits for the answer to start or reads a stream (http_streaming.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from f5_worker import audio, page, schema, stopping
from f5_worker.admission import METADATA_ACTIONS, RETRY_AFTER_S, Admission, Slot
from f5_worker.errors import UNAVAILABLE_RETRY_AFTER_S, http_status
from f5_worker.http_auth import EXCEPTION_HANDLERS, OPENAI_PATHS, token_dependencies
from f5_worker.http_streaming import JobStream
from f5_worker.job import Job
from f5_worker.openai_speech import ApiError, choose_voice, model_list, refusal, speech_input, timestamp_granularities
from f5_worker.speech_stream import speech_body, sse
from f5_worker.synthesis.unstreamed import Speech
from f5_worker.worker import Worker

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's limit on a load-balancing endpoint's request
SHUTDOWN_GRACE_S = 30  # on SIGTERM, how long requests in progress (streams too) may take to end, in seconds
# a stream is sent as it is made: no cache, and no buffering by a proxy (nginx reads X-Accel-Buffering)
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class Loading:
    """The Worker the app serves, once loaded, its job slots and the threads its jobs run in; ``failed``: why it
    could not be."""

    worker: Worker | None = None
    failed: str | None = None
    admission: Admission | None = None
    jobs: ThreadPoolExecutor | None = None


class ClientGone(Exception):
    """The client went away before its answer started (before its body was whole, or before its job's first
    item); its job, if any, has been stopped."""


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
                  dependencies=token_dependencies(api_token),
                  exception_handlers={**EXCEPTION_HANDLERS, HTTPException: _no_such_route})
    app.state.loading = state
    app.include_router(page.router)  # GET /: the page that speaks a text and lights its words (docs/page.md)

    def ready() -> Worker:
        if state.worker is None:
            why = f"the worker could not start ({state.failed})" if state.failed else "the models are still loading"
            raise ApiError(503, f"{why}; try again shortly", kind="server_error", code="not_ready")
        return state.worker

    def admit(worker: Worker, counted: bool = True) -> Slot:
        """A slot for a job (speech, synthesize), or the 429 that says to come back."""
        if state.admission is None:
            state.admission = Admission(worker.settings.max_concurrency)
            # the admitted jobs' threads, and as many again for stopped ones that run on to their next check
            state.jobs = ThreadPoolExecutor(2 * worker.settings.max_concurrency, thread_name_prefix="http-job")
        slot = state.admission.take(counted)
        if slot is None:
            raise ApiError(429, f"the worker is busy: it runs at most {state.admission.limit} jobs at once "
                                "(MAX_CONCURRENCY); try again in a moment", kind="requests", code="rate_limit_exceeded")
        return slot

    @app.api_route("/ping", methods=page.GET)
    async def ping() -> Response:
        if state.worker is not None and state.worker.gpu_failure is not None:
            # RunPod takes anything but 200 and 204 for an unhealthy worker: after a CUDA error every job here
            # would fail (worker.py), so the endpoint sends none and replaces it, as refresh_worker does on a queue
            return JSONResponse({"status": "failed", "error": f"the GPU failed ({state.worker.gpu_failure}); "
                                 "this worker must be replaced"}, status_code=503)
        if state.worker is not None:
            return JSONResponse({"status": "healthy"})
        if state.failed is not None:
            return JSONResponse({"status": "failed", "error": state.failed}, status_code=503)
        return Response(status_code=204)

    @app.api_route("/health", methods=page.GET)
    async def health() -> Response:
        try:
            worker = ready()
        except ApiError as exc:
            return _native_error(exc)
        return JSONResponse(await asyncio.to_thread(worker.handle, {"action": "health"}, _job_id()))

    @app.api_route("/v1/models", methods=page.GET)
    async def models() -> Response:
        try:
            worker = ready()
        except ApiError as exc:
            return _openai_error(exc)
        return JSONResponse(model_list(worker.registry.names(), worker.pool.default))

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        try:
            body = await _json_object(request)
            worker = ready()
            native, openai_voice = speech_input(body)
            slot = admit(worker)
        except ApiError as exc:
            return _openai_error(exc)
        except ClientGone:
            return Response(status_code=499)
        job_id = _job_id()
        headers = {"X-Job-Id": job_id}  # and X-Voice, set as the job starts
        fmt, granularities = native["output_format"], timestamp_granularities(body)
        stream_format = body.get("stream_format")

        def make() -> Iterator[Any]:
            with _openai_errors(worker, job_id):
                voice = choose_voice(worker.voices, native, openai_voice)
                if openai_voice is not None:
                    headers["X-Voice"] = voice
                if stream_format is None:
                    yield worker.synthesis.speak(schema.parse_job(native), Job(job_id))
                    return
            yield from speech_body(lambda streamed: worker.items(streamed, job_id, streams=True), native,
                                   stream_format == "sse", granularities,
                                   lambda model: worker.pool.engine(model).models.hop_length,
                                   lambda failed: worker.failure(failed, job_id))

        job = _job_items(make, job_id, state.jobs)
        try:
            first = await _start(request, slot, job)
        except ApiError as exc:
            return _openai_error(exc)
        except ClientGone:
            return Response(status_code=499)
        if stream_format is not None:
            media_type = "text/event-stream" if stream_format == "sse" else audio.content_type(fmt)
            return JobStream(first, job, lambda chunk: chunk, slot.free, media_type=media_type,
                             headers={**headers, **STREAM_HEADERS})
        await _end(slot, job)
        headers["X-Model"] = first.model
        if granularities:
            return JSONResponse(_timed_speech(first), headers=headers)
        return Response(first.audio, media_type=first.content_type, headers=headers)

    @app.post("/v1/synthesize")
    async def synthesize(request: Request) -> Response:
        try:
            body = await _json_object(request)
            worker = ready()
            counted = body.get("action", "synthesize") not in METADATA_ACTIONS
            slot = admit(worker, counted)
        except ApiError as exc:
            return _native_error(exc)
        except ClientGone:
            return Response(status_code=499)
        job_id = _job_id()
        headers = {"X-Job-Id": job_id}
        streamed = body.get("stream") is True  # as the schema takes it: JSON's true, nothing else

        def make() -> Iterator[dict | list]:
            if streamed:  # over HTTP a streamed job always streams, whatever STREAMING says (docs/http.md)
                yield from worker.items(body, job_id, streams=True)
            else:
                yield worker.handle(body, job_id)

        job = _job_items(make, job_id, state.jobs if counted else None)
        try:
            first = await _start(request, slot, job)
        except ClientGone:
            return Response(status_code=499)
        if isinstance(first, dict) and "error" in first:  # refused before its first item: a plain error
            await _end(slot, job)
            status = http_status(str(first["error"]))
            return JSONResponse({"error": first["error"]}, status_code=status, headers={**headers, **_retry_after(status)})
        if streamed:  # one event per item, an error after the first included (the last, then)
            return JobStream(sse(first), job, sse, slot.free, media_type="text/event-stream",
                             headers={**headers, **STREAM_HEADERS})
        await _end(slot, job)
        return JSONResponse(first, headers=headers)

    return app


def _job_items(make: Callable[[], Iterator[Any]], job_id: str, threads: ThreadPoolExecutor | None) -> AsyncGenerator:
    """A job's items, made in a thread under a new stop flag (stopping.made_in_thread): one of ``threads``, the
    jobs' own, for a job that holds a slot; the event loop's default pool for the details (METADATA_ACTIONS).
    Jobs in that default pool, min(32, cores + 4) threads, held /health and the details up until one ended
    where MAX_CONCURRENCY of them filled it."""
    context, flag = stopping.flagged_context(stopping.HTTP_STOP)

    def stopped() -> None:
        log.info("job %s: stopped: %s; its work ends at its next step", job_id, flag.cause)

    return stopping.made_in_thread(make, context, flag, stopped, threads)


async def _start(request: Request, slot: Slot, job: AsyncGenerator) -> Any:
    """The job's first item; where there is none (the job refused, its client gone, this request cancelled by
    a stopping server), the job is closed and its slot freed."""
    try:
        return await _first(request, job)
    except BaseException:
        await _end(slot, job)
        raise


async def _end(slot: Slot, job: AsyncGenerator) -> None:
    """A job's answer is out, or will never be: its slot is free at once, and it is stopped if not done."""
    slot.free()
    await job.aclose()


async def _first(request: Request, job: AsyncGenerator) -> Any:
    """The job's first item (a job that is not streamed: its one result), or ClientGone where its client goes
    away first: uvicorn says so to a reader of the request's (already read) body, and the job is stopped."""

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    pull = asyncio.ensure_future(anext(job))
    gone = asyncio.ensure_future(client_gone())
    try:
        done, _ = await asyncio.wait({pull, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not pull.done():  # gone, or this request cancelled: the job stops (made_in_thread raises its flag)
            pull.cancel()
            await asyncio.wait({pull})
    if pull not in done:
        raise ClientGone
    return pull.result()


async def _no_such_route(request: Request, exc: HTTPException) -> JSONResponse:
    """A path or method the server does not serve (404, 405): the route's own error form, as every refusal,
    so that an OpenAI SDK raises NotFoundError (or the like) with a message that says what was asked."""
    allowed = (exc.headers or {}).get("Allow")
    message = f"{request.method} {request.url.path}: {str(exc.detail).lower()}" + \
        (f"; this route takes {allowed}" if allowed else "")
    error = ApiError(exc.status_code, message, code="unknown_url" if exc.status_code == 404 else None)
    body = error.openai_body() if request.url.path.startswith(OPENAI_PATHS) else error.native_body()
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _openai_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.openai_body(), status_code=exc.status, headers=_retry_after(exc.status))


def _native_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.native_body(), status_code=exc.status, headers=_retry_after(exc.status))


def _retry_after(status: int) -> dict[str, str]:
    seconds = {503: UNAVAILABLE_RETRY_AFTER_S, 429: RETRY_AFTER_S}.get(status)
    return {"Retry-After": str(seconds)} if seconds else {}


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
    try:
        async for block in request.stream():
            size += len(block)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            blocks.append(block)
    except ClientDisconnect:  # gone before its body was whole: nobody to answer, and no job started
        raise ClientGone from None
    try:
        body = json.loads(b"".join(blocks))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise ApiError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


@contextlib.contextmanager
def _openai_errors(worker: Worker, job_id: str) -> Iterator[None]:
    """A speech job's failure as an ApiError (openai_speech.refusal: the rule every OpenAI route follows), the
    worker's own failure policy deciding on the failures that are not the request's."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the worker's failure policy, as for a queue job
        if isinstance(exc, MemoryError):
            log.exception("job %s ran out of memory", job_id)
        raise refusal(exc, lambda failed: worker.failure(failed, job_id)) from None


def _timed_speech(speech: Speech) -> dict:
    """A speech with timings asked (``timestamp_granularities``): the audio and its words, as the native result
    names them, in one JSON answer."""
    return {**speech.audio_fields(), "seed": speech.seed, "model": speech.model, "language": speech.language,
            **speech.timed_words()}


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
    """Run the server until it is stopped; the exit status: 0, or 2 when the worker could not start.

    SIGTERM (RunPod scaling the worker down, ``docker stop``) stops it gracefully: uvicorn stops taking
    requests and gives those in progress, streams included, up to SHUTDOWN_GRACE_S to end, then cuts them
    (which stops their jobs). uvicorn then raises the signal again for the handler it found; that is a
    no-op here, so a stop asked for ends with status 0, not as a process killed by SIGTERM."""
    import uvicorn

    outcome = {"status": 0}
    server: uvicorn.Server | None = None

    def stop(exc: BaseException) -> None:
        outcome["status"] = 2
        if server is not None:
            server.should_exit = True

    app = create_app(load, on_load_failure=stop, api_token=api_token)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=SHUTDOWN_GRACE_S))
    sockets = listening_sockets(port, port_health)
    log.info("HTTP server on port%s %s", "s" if len(sockets) > 1 else "",
             " and ".join(str(s.getsockname()[1]) for s in sockets))
    if api_token:
        log.info("every route but /ping needs the bearer token (API_TOKEN)")
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: setattr(server, "should_exit", True))
    try:
        server.run(sockets=sockets)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome["status"]
