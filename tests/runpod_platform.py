"""A stand-in for RunPod's job API, as runpod-python's worker loop (``JobScaler``) talks to it on a real endpoint.

The worker process is the real thing (``runpod_handler.py`` with runpod-python in
production mode: fitness checks, heartbeat process, job-take, job-done, stop
channel); only the platform on the other end of the HTTP calls is ours:

- ``GET  .../job-take/<worker>?...``: one job as ``{"id", "input"}``, or 204;
- ``GET  .../job-take-batch/<worker>?...&batch_size=N``: up to N jobs as a list, or 204;
- ``POST .../job-done/<worker>/<job id>?...&isStream=false``: the result, JSON in the body (``isStream=true``
  from a streaming handler, whose output is then the list of items, or ``[]``);
  ``{"status": "IN_PROGRESS", "output": ...}`` posted there is a progress update (``/status`` shows it);
- ``POST .../job-stream/<worker>/<job id>?...``: one streamed item, ``{"output": item}``, as it is yielded;
- ``GET  .../job-stop/<worker>?...``: ``{"jobsToStop": [...]}`` (cancel, timeout), or 204;
- ``GET  /ping/<worker>?job_id=a,b``: the heartbeat, with the jobs in progress.

Each GET holds the request up to ``LONG_POLL_S`` while it has nothing to give, as RunPod's do. A post over
RunPod's size limits (``STREAM_ITEM_LIMIT``, ``RESULT_LIMIT``) is refused with 400, as RunPod refuses it, and
never reaches ``streamed`` or ``results``: the item is lost, and a job whose result is refused never ends.
Standard library only, so that scripts/ci/image_smoke_test.sh can run it with any python3:

    python3 tests/runpod_platform.py --port P --job test_input.json --result out.json --timeout 600
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LONG_POLL_S = 1.0
STREAM_ITEM_LIMIT = 1_000_000  # bytes of one post to job-stream RunPod takes
RESULT_LIMIT = 10_000_000  # bytes of a result posted to job-done, as for a job sent to /run (20 MB for /runsync)
_ROUTES = {
    "take": re.compile(r"^/v2/endpoint/(job-take|job-take-batch)/[^/]+$"),
    "done": re.compile(r"^/v2/endpoint/job-done/[^/]+/(?P<job_id>[^/]+)$"),
    "stream": re.compile(r"^/v2/endpoint/job-stream/[^/]+/(?P<job_id>[^/]+)$"),
    "stop": re.compile(r"^/v2/endpoint/job-stop/[^/]+$"),
    "ping": re.compile(r"^/ping/[^/]+$"),
}


class RunPodJobApi:
    def __init__(self, port: int = 0, result_limit: int = RESULT_LIMIT):
        self.result_limit = result_limit
        self.refused: list[tuple[str, str, int]] = []  # (route, job id, bytes) of each post refused for its size
        self._jobs: deque[dict] = deque()
        self._stops: list[str] = []
        self._ids = itertools.count(1)
        self.results: dict[str, dict] = {}
        self.streamed: dict[str, list] = {}  # job id -> the items posted to job-stream, in order
        self.progress: dict[str, list] = {}  # job id -> what progress_update posted (status IN_PROGRESS)
        self.taken: dict[str, float] = {}  # job id -> when the worker took it
        self.batch_sizes: list[int] = []  # what each job-take asked for
        self.pings: list[list[str]] = []  # the job ids each heartbeat reported in progress
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    # -- the test's side --------------------------------------------------------------------------

    def submit(self, job_input: dict) -> str:
        job_id = f"job-{next(self._ids)}"
        with self._changed:
            self._jobs.append({"id": job_id, "input": job_input})
            self._changed.notify_all()
        return job_id

    def stop(self, job_id: str) -> None:
        with self._changed:
            self._stops.append(job_id)
            self._changed.notify_all()

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
            "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/v2/endpoint/job-stream/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID",
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_AI_API_KEY": "test-key",
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",  # they dial 8.8.8.8, which a test machine may not reach
        }

    # -- the worker's side (called from the server's threads) ---------------------------------------

    def take(self, size: int) -> list[dict]:
        with self._changed:
            self.batch_sizes.append(size)
            self._changed.wait_for(lambda: self._jobs, LONG_POLL_S)
            jobs = [self._jobs.popleft() for _ in range(min(size, len(self._jobs)))]
            for job in jobs:
                self.taken[job["id"]] = time.monotonic()
            self._changed.notify_all()
            return jobs

    def done(self, job_id: str, body: dict) -> None:
        with self._changed:
            if body.get("status") == "IN_PROGRESS":  # runpod's progress_update posts here too
                self.progress.setdefault(job_id, []).append(body.get("output"))
            else:
                self.results[job_id] = body
            self._changed.notify_all()

    def stream(self, job_id: str, body: dict) -> None:
        with self._changed:
            self.streamed.setdefault(job_id, []).append(body["output"])
            self._changed.notify_all()

    def refuse(self, route: str, job_id: str, size: int) -> None:
        with self._changed:
            self.refused.append((route, job_id, size))
            self._changed.notify_all()

    def stops(self) -> list[str]:
        with self._changed:
            self._changed.wait_for(lambda: self._stops, LONG_POLL_S)
            stops, self._stops[:] = list(self._stops), []
            return stops

    def ping(self, job_ids: list[str]) -> None:
        with self._changed:
            self.pings.append(job_ids)
            self._changed.notify_all()

    # -- running it -----------------------------------------------------------------------------

    def __enter__(self) -> RunPodJobApi:
        self._thread = threading.Thread(target=self._server.serve_forever, name="runpod-api", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _handler_for(api: RunPodJobApi):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp and requests use it

        def do_GET(self):  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if match := _ROUTES["take"].match(url.path):
                batch = match.group(1) == "job-take-batch"
                jobs = api.take(int(query.get("batch_size", ["1"])[0]) if batch else 1)
                return self._json(jobs if batch else jobs[0]) if jobs else self._empty(204)
            if _ROUTES["stop"].match(url.path):
                stops = api.stops()
                return self._json({"jobsToStop": stops}) if stops else self._empty(204)
            if _ROUTES["ping"].match(url.path):
                api.ping([i for i in query.get("job_id", [""])[0].split(",") if i])
                return self._empty(200)
            return self._empty(404)

        def do_POST(self):  # noqa: N802
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            for route, limit in (("done", api.result_limit), ("stream", STREAM_ITEM_LIMIT)):
                if (match := _ROUTES[route].match(url.path)) and len(body) > limit:
                    api.refuse(route, match.group("job_id"), len(body))
                    return self._empty(400)
            if match := _ROUTES["done"].match(url.path):
                api.done(match.group("job_id"), json.loads(body))  # JSON, sent with a form content type
                return self._empty(200)
            if match := _ROUTES["stream"].match(url.path):
                api.stream(match.group("job_id"), json.loads(body))
                return self._empty(200)
            return self._empty(404)

        def _json(self, value) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet: the worker's log is the one to read
            pass

    return Handler


def main(argv=None) -> int:
    """Serve one job from a RunPod-style JSON file (``{"input": {...}}``) to a worker; write its result."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--job", required=True, help="a file like test_input.json")
    parser.add_argument("--result", required=True, help="where to write the posted result")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    with open(args.job) as f:
        job_input = json.load(f)["input"]
    with RunPodJobApi(args.port) as api:
        job_id = api.submit(job_input)
        result = api.result(job_id, timeout=args.timeout)
        with open(args.result, "w") as f:
            json.dump({"result": result, "batch_sizes": api.batch_sizes, "pings": api.pings}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
