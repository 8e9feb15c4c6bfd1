"""A stand-in for RunPod's job API, as runpod-python's worker loop (``JobScaler``) talks to it on a real endpoint.

The worker process is the real thing (``runpod_handler.py`` with runpod-python in
production mode: fitness checks, heartbeat process, job-take, job-done, stop
channel); only the platform on the other end of the HTTP calls is ours:

- ``GET  .../job-take/<worker>?...``: one job as ``{"id", "input"}``, or 204;
- ``GET  .../job-take-batch/<worker>?...&batch_size=N``: up to N jobs as a list, or 204;
- ``POST .../job-done/<worker>/<job id>?...&isStream=false``: the result, JSON in the body;
- ``GET  .../job-stop/<worker>?...``: ``{"jobsToStop": [...]}`` (cancel, timeout), or 204;
- ``GET  /ping/<worker>``: the heartbeat.

Each GET holds the request up to ``LONG_POLL_S`` while it has nothing to give, as RunPod's do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections import deque

from aiohttp import web

LONG_POLL_S = 1.0


class RunPodJobApi:
    def __init__(self):
        self._jobs: deque[dict] = deque()
        self._stops: list[str] = []
        self._ids = itertools.count(1)
        self.results: dict[str, dict] = {}
        self.taken: dict[str, float] = {}  # job id -> when the worker took it
        self.batch_sizes: list[int] = []  # what each job-take asked for
        self.pings: list[list[str]] = []  # the job ids each heartbeat reported in progress
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = _free_port()

    # -- the test's side --------------------------------------------------------------------------

    def submit(self, job_input: dict) -> str:
        job_id = f"job-{next(self._ids)}"
        with self._changed:
            self._jobs.append({"id": job_id, "input": job_input})
        return job_id

    def stop(self, job_id: str) -> None:
        with self._changed:
            self._stops.append(job_id)

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._changed.wait(min(left, 0.2))
        return value

    def result(self, job_id: str, timeout: float = 120) -> dict:
        return self.wait(lambda: self.results.get(job_id), timeout, f"the result of {job_id}")

    def worker_env(self, worker_id: str = "test-worker") -> dict[str, str]:
        """What RunPod sets in a serverless worker's environment (URL shapes as runpod-python expects)."""
        base = f"http://127.0.0.1:{self.port}"
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/v2/endpoint/job-take/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/v2/endpoint/job-done/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID",
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_AI_API_KEY": "test-key",
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",  # they dial 8.8.8.8, which a test machine may not reach
        }

    # -- the worker's side --------------------------------------------------------------------------

    async def _take(self, request: web.Request) -> web.StreamResponse:
        batch = request.match_info["kind"] == "job-take-batch"
        size = int(request.query.get("batch_size", "1")) if batch else 1
        with self._changed:
            self.batch_sizes.append(size)
        jobs = await self._long_poll(lambda: self._pop_jobs(size))
        if not jobs:
            return web.Response(status=204)
        return web.json_response(jobs if batch else jobs[0])

    def _pop_jobs(self, size: int) -> list[dict]:
        with self._changed:
            jobs = [self._jobs.popleft() for _ in range(min(size, len(self._jobs)))]
            for job in jobs:
                self.taken[job["id"]] = time.monotonic()
            if jobs:
                self._changed.notify_all()
            return jobs

    async def _done(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())  # runpod-python posts JSON with a form content type
        with self._changed:
            self.results[request.match_info["job_id"]] = body
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _stop_channel(self, request: web.Request) -> web.StreamResponse:
        def pop():
            with self._changed:
                stops, self._stops[:] = list(self._stops), []
                return stops

        stops = await self._long_poll(pop)
        if not stops:
            return web.Response(status=204)
        return web.json_response({"jobsToStop": stops})

    async def _ping(self, request: web.Request) -> web.Response:
        self.pings.append([i for i in request.query.get("job_id", "").split(",") if i])
        return web.Response(text="ok")

    async def _long_poll(self, take):
        deadline = time.monotonic() + LONG_POLL_S
        while not (got := take()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return got

    # -- running it -----------------------------------------------------------------------------

    def __enter__(self) -> RunPodJobApi:
        started = threading.Event()

        def serve():
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/v2/endpoint/{kind:job-take|job-take-batch}/{worker}", self._take)
            app.router.add_post("/v2/endpoint/job-done/{worker}/{job_id}", self._done)
            app.router.add_get("/v2/endpoint/job-stop/{worker}", self._stop_channel)
            app.router.add_get("/ping/{worker}", self._ping)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="runpod-api", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
