"""The page on this machine, its calls forwarded to a deployed endpoint (``python -m f5_worker.page --endpoint``).

The page calls ``POST /v1/synthesize`` on the server it came from. Here that server is a small app that holds
the endpoint's API key (``RUNPOD_API_KEY``) and makes each call on the page's behalf, so the key never reaches
the browser. Two kinds of endpoint (docs/page.md):

- **http**: a load-balancing endpoint (``https://<id>.api.runpod.ai``), or any worker run with ``SERVE=http``.
  The same paths, forwarded as they are with ``Authorization: Bearer <key>``; a streamed answer
  (``text/event-stream``) passes through as it comes.
- **queue**: a queue endpoint (``https://api.runpod.ai/v2/<id>``), or runpod's local API server
  (``--rp_serve_api``). ``/v1/synthesize`` becomes ``/runsync`` (polling ``/status/<id>`` when RunPod stops
  waiting), and its streamed form ``/run`` then ``/stream/<id>``, polled, each item sent on as one
  ``data: <item>`` event, as the HTTP server sends them: a job refused before its first item answers a plain
  JSON error with a 4xx status, and an error after it is a last event ``data: {"error": ...}``. A page that
  goes away (Stop, a closed tab) cancels its streamed job.

Errors are the worker's own form, ``{"error": "<field>: <problem>"}``; what goes wrong between here and the
endpoint names ``endpoint``: ``endpoint: RunPod answered 401 (...)``, ``endpoint: cannot reach ...``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from f5_worker import page
from f5_worker.errors import UNAVAILABLE_RETRY_AFTER_S, http_status
from f5_worker.logs import hide_credentials

log = logging.getLogger(__name__)

KINDS = ("queue", "http")
QUEUE_PATH = re.compile(r"^/v2/[^/]+/?$")  # RunPod's queue endpoints: https://api.runpod.ai/v2/<endpoint id>
MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's limit on a load-balancing request; /run and /runsync take less
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 660.0  # a job may run up to the endpoint's execution timeout (600 s in docs/deployment.md)
STATUS_POLL_S = 1.0  # /status/<id>, once /runsync has stopped waiting for a job
STREAM_POLL_S = 0.2  # /stream/<id>, after an answer with nothing new
JOB_TIMEOUT_S = 3600.0  # the longest a call follows one job
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
ERROR_QUOTE_CHARS = 300  # of an endpoint's answer quoted in an error


class Refused(Exception):
    """A call answered with a native error: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def response(self) -> JSONResponse:
        """As the HTTP server answers it: a 503 (the worker's storage failing, a stopped job) asks the page
        to come back in ``errors.UNAVAILABLE_RETRY_AFTER_S``."""
        wait = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)} if self.status == 503 else {}
        return JSONResponse({"error": str(self)}, status_code=self.status, headers=wait)


@dataclass(frozen=True)
class Endpoint:
    """Where the calls go: ``url`` without a trailing slash, its ``kind``, and the key sent with each call."""

    url: str
    kind: str
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, kind: str = "auto", api_key: str | None = None) -> Endpoint:
        """``kind`` auto: ``/v2/<id>`` is a queue endpoint, anything else is served over HTTP (SERVE=http)."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--endpoint must be an http(s) URL (got {hide_credentials(url)[:200]!r})")
        if parts.username or parts.password:
            raise ValueError("--endpoint must not hold a user name or password; the key goes in RUNPOD_API_KEY")
        if parts.query or parts.fragment:
            raise ValueError("--endpoint must not hold a query or a fragment")
        if kind == "auto":
            kind = "queue" if QUEUE_PATH.match(parts.path) else "http"
        if kind not in KINDS:
            raise ValueError(f"--kind must be auto, {' or '.join(KINDS)} (got {kind!r})")
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", kind, api_key or None)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def create_app(endpoint: Endpoint, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The page, and its calls forwarded to ``endpoint``."""
    clients: list[httpx.AsyncClient] = []
    cancelling: set[asyncio.Task] = set()  # cancels of streamed jobs whose page went away

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=timeout, headers=endpoint.headers, transport=transport,
                                     follow_redirects=False) as client:
            clients.append(client)
            yield
            if cancelling:
                await asyncio.wait(cancelling, timeout=CONNECT_TIMEOUT_S)

    app = FastAPI(title="f5-worker page", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.include_router(page.router)

    @app.post("/v1/synthesize")
    async def synthesize(request: Request) -> Response:
        client = clients[0]
        try:
            body = await _body(request)
            if endpoint.kind == "http":
                return await _pass_on(client, "POST", f"{endpoint.url}/v1/synthesize", body,
                                      request.headers.get("accept", "application/json"))
            job = _job(body)
            if job.get("stream") is True:
                return await _streamed(client, endpoint, job, cancelling)
            return JSONResponse(await _run_sync(client, endpoint, job))
        except Refused as exc:
            return exc.response()

    def passed_on(path: str):
        async def get() -> Response:
            try:
                return await _pass_on(clients[0], "GET", endpoint.url + path, None, "application/json")
            except Refused as exc:
                return exc.response()

        return get

    if endpoint.kind == "http":  # the worker's other routes the page's user may look at
        for path in ("/v1/models", "/health", "/ping"):
            app.add_api_route(path, passed_on(path), methods=page.GET, include_in_schema=False)

    return app


async def _body(request: Request) -> bytes:
    """The page's request body, up to MAX_BODY_BYTES."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, f"input: the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _job(body: bytes) -> dict:
    try:
        job = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise Refused(400, f"input: the body is not valid JSON ({exc})") from None
    if not isinstance(job, dict):
        raise Refused(400, "input: must be a JSON object")
    return job


# -- a load-balancing endpoint: the same paths --------------------------------------------------------------


async def _pass_on(client: httpx.AsyncClient, method: str, url: str, body: bytes | None, accept: str) -> Response:
    """The endpoint's answer as it comes; an error that is not the worker's own JSON becomes one."""
    headers = {"Accept": accept} | ({"Content-Type": "application/json"} if body is not None else {})
    try:
        upstream = await client.send(client.build_request(method, url, content=body, headers=headers), stream=True)
    except httpx.HTTPError as exc:
        raise Refused(502, f"endpoint: cannot reach {url} ({type(exc).__name__}: {exc})") from None
    kind = upstream.headers.get("content-type", "")
    if upstream.status_code >= 400 and not kind.startswith("application/json"):
        text = (await upstream.aread()).decode(errors="replace")
        await upstream.aclose()
        raise Refused(upstream.status_code, _answered(upstream.status_code, text))
    passed = {name: value for name, value in upstream.headers.items()
              if name.lower() in ("content-type", "cache-control", "retry-after", "x-job-id", "x-model")}

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:  # also when the page goes away: the worker sees its client gone, and stops the job
            await upstream.aclose()

    return StreamingResponse(body(), status_code=upstream.status_code, headers=passed)


def _answered(status: int, text: str) -> str:
    reason = httpx.codes.get_reason_phrase(status)
    quoted = " ".join(text.split())[:ERROR_QUOTE_CHARS]
    return f"endpoint: RunPod answered {status}{f' ({reason})' if reason else ''}{f': {quoted}' if quoted else ''}"


# -- a queue endpoint: /runsync, and /run with /stream ------------------------------------------------------


async def _call(client: httpx.AsyncClient, method: str, url: str, payload: dict | None = None) -> dict:
    """One call to RunPod's job API: its JSON answer, or Refused naming the endpoint."""
    try:
        answer = await client.request(method, url, json=payload)
    except httpx.HTTPError as exc:
        raise Refused(502, f"endpoint: cannot reach {url} ({type(exc).__name__}: {exc})") from None
    if answer.status_code >= 400:
        raise Refused(502 if answer.status_code >= 500 else answer.status_code,
                      _answered(answer.status_code, answer.text))
    try:
        data = answer.json()
    except ValueError:
        raise Refused(502, _answered(answer.status_code, answer.text)) from None
    if not isinstance(data, dict):
        raise Refused(502, _answered(answer.status_code, answer.text))
    return data


async def _poll(client: httpx.AsyncClient, url: str) -> dict:
    """``/status/<id>`` or ``/stream/<id>``: GET on RunPod, POST on runpod's local API server (405 to a GET)."""
    try:
        return await _call(client, "GET", url)
    except Refused as exc:
        if exc.status != 405:
            raise
    return await _call(client, "POST", url)


def _job_error(error) -> Refused:
    """A job's error: the worker's ``<field>: <problem>`` as it is (500 for ``internal:``); anything else is
    RunPod's or runpod-python's own, and names the endpoint."""
    text = error if isinstance(error, str) else json.dumps(error)
    if re.match(r"^[A-Za-z_][\w.]*: ", text) and not text.startswith("endpoint:"):
        return Refused(http_status(text), text)
    return Refused(502, f"endpoint: the job failed ({text[:ERROR_QUOTE_CHARS]})")


def _finished(answer: dict) -> dict:
    """A finished job's result, as the HTTP server's ``/v1/synthesize`` answers it, or Refused."""
    status = answer.get("status")
    if status == "FAILED":
        raise _job_error(answer.get("error"))
    if status != "COMPLETED":
        raise Refused(504, f"endpoint: the job ended {str(status).lower().replace('_', ' ')} on the endpoint")
    output = answer.get("output")
    if isinstance(output, list) and len(output) == 1:  # an endpoint with STREAMING=1 answers a list
        output = output[0]
    if isinstance(output, dict) and isinstance(output.get("error"), str):
        raise _job_error(output["error"])
    if not isinstance(output, dict):
        raise Refused(502, "endpoint: the job's output is not a result (is the endpoint an f5-worker?)")
    return output


async def _run_sync(client: httpx.AsyncClient, endpoint: Endpoint, job: dict) -> dict:
    answer = await _call(client, "POST", f"{endpoint.url}/runsync", {"input": job})
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while answer.get("status") not in FINISHED:  # /runsync stopped waiting: follow the job on /status
        if "id" not in answer or time.monotonic() > deadline:
            raise Refused(504, f"endpoint: no result ({json.dumps(answer)[:ERROR_QUOTE_CHARS]})")
        await asyncio.sleep(STATUS_POLL_S)
        answer = await _poll(client, f"{endpoint.url}/status/{answer['id']}")
    return _finished(answer)


async def _streamed(client: httpx.AsyncClient, endpoint: Endpoint, job: dict,
                    cancelling: set[asyncio.Task]) -> Response:
    """``/run``, then ``/stream/<id>`` as SSE. The first item is awaited before answering, so a refused job
    answers a plain error, as the HTTP server's streamed form does."""
    started = await _call(client, "POST", f"{endpoint.url}/run", {"input": job})
    job_id = started.get("id")
    if not isinstance(job_id, str):
        raise Refused(502, f"endpoint: /run gave no job id ({json.dumps(started)[:ERROR_QUOTE_CHARS]})")
    items = _stream_items(client, endpoint, job_id)
    ended = False
    try:
        first = await anext(items, None)
    except BaseException:
        await items.aclose()
        raise
    if first is None:
        raise Refused(502, "endpoint: the job ended without sending anything")
    if isinstance(first.get("error"), str):
        await items.aclose()
        raise _job_error(first["error"])

    async def events() -> AsyncIterator[bytes]:
        nonlocal ended
        try:
            item = first
            while item is not None:
                yield f"data: {json.dumps(item)}\n\n".encode()
                if item.get("done") or "error" in item:
                    break
                item = await anext(items, None)
            ended = True
        except Refused as exc:  # the endpoint failed between two items
            ended = True
            yield f"data: {json.dumps({'error': str(exc)})}\n\n".encode()
        finally:
            await items.aclose()
            if not ended:  # the page went away: the job need not go on
                task = asyncio.get_running_loop().create_task(_cancel(client, endpoint, job_id))
                cancelling.add(task)
                task.add_done_callback(cancelling.discard)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream_items(client: httpx.AsyncClient, endpoint: Endpoint, job_id: str) -> AsyncIterator[dict]:
    """A streamed job's items as RunPod's ``/stream/<id>`` gives them; a failure is a last ``{"error"}`` item."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        answer = await _poll(client, f"{endpoint.url}/stream/{job_id}")
        entries = answer.get("stream") or []
        for entry in entries:
            item = entry.get("output") if isinstance(entry, dict) and "output" in entry else entry
            yield item if isinstance(item, dict) else {"error": "endpoint: a streamed item is not an object"}
        status = answer.get("status")
        if status == "COMPLETED":
            return
        if status in FINISHED:
            if status == "FAILED" and "error" not in answer:  # /stream may leave the error to /status
                answer = await _poll(client, f"{endpoint.url}/status/{job_id}")
            try:
                _finished(answer)
            except Refused as exc:
                yield {"error": str(exc)}
            return
        if time.monotonic() > deadline:
            yield {"error": f"endpoint: the stream took longer than {JOB_TIMEOUT_S:.0f} s"}
            return
        if not entries:
            await asyncio.sleep(STREAM_POLL_S)


async def _cancel(client: httpx.AsyncClient, endpoint: Endpoint, job_id: str) -> None:
    try:
        await client.post(f"{endpoint.url}/cancel/{job_id}", timeout=CONNECT_TIMEOUT_S)
        log.info("job %s cancelled: its page went away", job_id)
    except httpx.HTTPError as exc:
        log.warning("could not cancel job %s: %s", job_id, exc)
