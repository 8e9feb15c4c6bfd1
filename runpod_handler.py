"""RunPod entry point of the F5-TTS worker: load the models once, then serve jobs.

usage: python runpod_handler.py [--test_input JSON] [--rp_serve_api [--rp_api_host HOST] [--rp_api_port PORT]
                                [--rp_api_concurrency N]] [--rp_log_level LEVEL] [--rp_debugger] [-h]

On a RunPod endpoint (the image's start command runs it) it takes jobs from the endpoint's queue. Run by
hand, it uses runpod-python's local modes:

  (no option)              run the job in ./test_input.json once, print the outcome and exit
                           (exit status 0 when the job succeeded, 1 when it failed)
  --test_input JSON        the same with the job given here, e.g. '{"input": {"text": "Hello."}}'
  --rp_serve_api           serve RunPod's API locally (POST /runsync, /run; GET /status/ID) until stopped
  --rp_api_host HOST       the address it listens on (default localhost)
  --rp_api_port PORT       its port (default 8000)
  --rp_api_concurrency N   its number of server processes (default 1)
  --rp_log_level LEVEL     runpod's log level: ERROR, WARN, INFO or DEBUG (default $RUNPOD_LOG_LEVEL)
  --rp_debugger            add runpod's timing and system report to each result
  -h, --help               print this and exit, without loading anything

With SERVE=http (docs/http.md) it serves HTTP itself instead, for RunPod's load-balancing endpoints or any
host: an OpenAI-compatible /v1/audio/speech, /v1/models, the native /v1/synthesize, /ping and /health, on
$PORT (and $PORT_HEALTH); the options above do not apply then.

The settings come from environment variables (docs/configuration.md), e.g. DEFAULT_MODEL=tiny for the small
random test model. What it changes: model weights missing from the Hugging Face cache (HF_HOME) are
downloaded into it; with a network volume mounted (NETWORK_VOLUME_PATH) stored voices and results go
there; with RESULT_DUMP_DIR set, each job's whole result is written there as <job id>.json (read it with
scripts/dev/show_result.py). Exit status 2: a setting it cannot use, or model weights it cannot find.

runpod-python decides once, from the handler function, whether a worker streams: a generator
handler's every result is posted as stream items, and ``/runsync`` answers with their list. So
``STREAMING`` chooses the handler at start (docs/api.md, "Streaming"). runpod's test_input.json
mode calls the handler once and never iterates a generator, so it always gets the plain one.
"""

import asyncio
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from f5_worker import logs
from f5_worker.config import SettingsError, get_settings, runpod_local_test_mode, runpod_log_level
from f5_worker.runpod_import import import_runpod
from f5_worker.schema import is_openai_route
from f5_worker.transcribe import hub_logs_once
from f5_worker.tts.weights import ModelUnavailableError

if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    print(__doc__.strip())
    sys.exit(0)

log = logging.getLogger("f5_worker")
try:
    runpod = import_runpod()  # its job record private to this process, its CPU query quick (runpod_import.py)
    logs.configure(runpod_log_level(), sys.stderr)  # every line escaped: no job's input can forge one (logs.py)
except SettingsError as exc:  # a RUNPOD_LOG_LEVEL neither runpod nor logging knows
    logs.configure("INFO", sys.stderr)
    log.error("cannot start: %s", exc)
    sys.exit(2)
hub_logs_once()  # huggingface_hub and transformers would print their lines a second time, their own way

PROGRESS_POST_TIMEOUT_S = 5.0  # the longest a result waits for the job's progress posts to finish



def serve_http() -> bool:
    """``SERVE=http``: whether this run starts the worker's HTTP server instead of runpod's (run as the main program)."""
    try:
        return __name__ == "__main__" and get_settings().serve == "http"
    except SettingsError as exc:
        log.error("cannot start: %s", exc)
        sys.exit(2)


SERVE_HTTP = __name__ != "__mp_main__" and serve_http()

if __name__ != "__mp_main__" and not SERVE_HTTP:  # not in the alignment processes, which import this file
    try:
        from f5_worker.delivery import KeptStream
        from f5_worker.worker import Worker

        WORKER = Worker.from_env()
        RESULT_DUMP_DIR = WORKER.settings.result_dump_dir
    except (ModelUnavailableError, SettingsError) as exc:
        log.error("cannot start: %s", exc)
        sys.exit(2)


class ProgressPoster:
    """runpod's progress_update for one job, with every post finished before the job's result is sent.

    progress_update posts from a thread of its own that nobody can wait for, so a last report could reach
    RunPod after the result and show the job in progress again. This runs the same post
    (``rp_progress._thread_target``, what progress_update starts) in threads the handler joins first.
    """

    def __init__(self, job: dict):
        self.job = job
        self.threads: list[threading.Thread] = []

    def __call__(self, progress: dict) -> None:
        from runpod.serverless.modules import rp_progress

        post = rp_progress._thread_target  # noqa: SLF001 - progress_update's post (runpod 1.10.0-1.12.0; docs/architecture.md)
        thread = threading.Thread(target=post, args=(self.job, progress), daemon=True)
        thread.start()
        self.threads.append(thread)

    async def sent(self) -> None:
        """Wait (a few seconds at most) until every report has been posted."""
        for thread in self.threads:
            await asyncio.to_thread(thread.join, PROGRESS_POST_TIMEOUT_S)


def reporter_for(job) -> ProgressPoster | None:
    """Where a job's progress goes: RunPod's job API; nowhere in runpod's local modes."""
    return ProgressPoster(job) if ON_RUNPOD else None


async def handler(job):
    """RunPod calls this once per job, several at a time; the Worker never raises.

    An OpenAI route's job (``openai_route``) answers a list of its one answer, as a streaming worker's does
    (docs/http.md): runpod-python takes an ``"error"`` in a returned dict as the job's failure, and one that
    is not a string (OpenAI's error object) loses the job's output; in a list, the answer is the output."""
    reporter = reporter_for(job)
    result = await WORKER.handle_async(job.get("input"), job_id=job.get("id"), reporter=reporter)
    if reporter is not None:
        await reporter.sent()
    if RESULT_DUMP_DIR:
        dump_result(RESULT_DUMP_DIR, str(job.get("id", "job")), result)
    if is_openai_route(job.get("input")):
        if isinstance(result, list):  # events, in runpod's local test_input.json mode with STREAMING=1
            return result
        if result.pop("refresh_worker", False):
            ask_to_replace_this_worker()  # runpod reads refresh_worker from a returned dict only
        return [result]
    return result


async def stream_handler(job):
    """The streaming handler (STREAMING=1): a streamed job's items, or any other job's one result.

    On RunPod each item, once sent, is cut down to what the job's result keeps (delivery.KeptStream): runpod
    appends the very dict yielded here to that result. runpod's local API server gives the items it keeps
    as the stream itself, and has no limit: there they stay whole. An OpenAI route's events are text, which
    cannot be cut down: the result holds them whole (docs/http.md)."""
    items = []
    reporter = reporter_for(job)
    kept = KeptStream(WORKER.settings.max_inline_bytes, job.get("id")) if ON_RUNPOD else None
    async for item in WORKER.stream_async(job.get("input"), job_id=job.get("id"), reporter=reporter):
        if reporter is not None:
            await reporter.sent()
        if isinstance(item, str):  # an OpenAI route's event text (docs/http.md), passed on as it is
            if RESULT_DUMP_DIR:
                items.append(item)
            yield item
            continue
        if item.pop("refresh_worker", False):
            ask_to_replace_this_worker()  # runpod drops a yielded item's refresh_worker
        if kept is not None and item.get("done"):
            kept.closing(item)
        if RESULT_DUMP_DIR:
            items.append(dict(item))  # whole: the item itself is cut down once sent
        yield item
        if kept is not None and "error" not in item:  # runpod has sent it, and holds it in the job's result
            kept.sent(item)
    if RESULT_DUMP_DIR:
        dump_result(RESULT_DUMP_DIR, str(job.get("id", "job")), items)


def concurrency(current: int) -> int:
    """How many jobs this worker takes at once: MAX_CONCURRENCY, or none once its GPU has failed."""
    return WORKER.concurrency()


def dump_result(directory: Path, job_id: str, result: dict | list) -> None:
    """Local debugging (RESULT_DUMP_DIR): the whole result as a file, since runpod cuts long log lines."""
    directory.mkdir(parents=True, exist_ok=True)
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in job_id)
    (directory / f"{safe_id}.json").write_text(json.dumps(result))


def sigterm_stops_the_local_server() -> None:
    """``--rp_serve_api``: SIGTERM stops the local server at once, a job in progress included.

    runpod serves its local API with uvicorn (0.54 in uv.lock), which takes a first SIGINT or SIGTERM as
    "stop once every request in progress has its answer" and only a second SIGINT as "stop now": a server
    sent SIGTERM (``kill``, ``docker stop``, a process supervisor) while a long job ran kept running until
    the job ended, and repeating the SIGTERM changed nothing. Here a SIGTERM does what the second Ctrl-C
    does: the server stops, requests in progress get no answer, and uvicorn then raises the signal again,
    which ends the process (exit status -15). SIGINT is left as uvicorn has it. Only this mode: on RunPod,
    SIGTERM means "finish the jobs in progress, then exit" (runpod's JobScaler; tests/test_runpod_worker.py).
    """
    import uvicorn

    handle_exit = uvicorn.Server.handle_exit
    if getattr(handle_exit, "sigterm_stops", False):
        return

    def handle_exit_now_on_sigterm(self, sig, frame):
        handle_exit(self, sig, frame)
        if sig == signal.SIGTERM:
            self.force_exit = True  # what uvicorn sets on a second SIGINT

    handle_exit_now_on_sigterm.sigterm_stops = True
    uvicorn.Server.handle_exit = handle_exit_now_on_sigterm


def ask_to_replace_this_worker() -> None:
    """Have RunPod replace this worker once the job in progress ends (a streamed job's ``refresh_worker``).

    runpod-python (1.10 to 1.12) takes ``refresh_worker`` from two places: the dict a plain handler
    returns (``rp_job.run_job`` pops it and asks for ``stopPod``), and the ``CONFIG`` dict passed to
    ``runpod.serverless.start``, which it reads after every job (``rp_job.handle_job`` and
    ``JobScaler.handle_job``, which then stops taking jobs). From a generator handler's items it takes
    nothing: ``run_job_generator`` yields each one as ``{"output": item}`` and ``handle_job`` never looks
    inside. So a streaming worker has only ``CONFIG``; setting it ends this worker after the job, as a plain
    handler's ``refresh_worker`` does (the failure policy sets it only once the GPU has failed, when every
    later job would fail too)."""
    CONFIG["refresh_worker"] = True


CONFIG = {"handler": handler, "concurrency_modifier": concurrency}
# taking jobs from RunPod's queue (or the tests' stand-in), not one of runpod's local modes
ON_RUNPOD = not runpod_local_test_mode(sys.argv) and "--rp_serve_api" not in sys.argv



def run_http_server() -> int:
    """``SERVE=http``: the HTTP server (f5_worker/http_server.py) on PORT (and PORT_HEALTH), answering /ping
    with 204 while the models load in a thread; exit status 2 when they cannot be."""
    from f5_worker.http_server import serve
    from f5_worker.worker import Worker

    settings = get_settings()
    return serve(settings.port, settings.port_health, Worker.from_env, api_token=settings.api_token)


if __name__ == "__main__" and SERVE_HTTP:
    sys.exit(run_http_server())
elif __name__ == "__main__":
    if WORKER.settings.streaming and not runpod_local_test_mode(sys.argv):
        # return_aggregate_stream: /runsync and /status answer with the list of items, not an empty list
        CONFIG.update(handler=stream_handler, return_aggregate_stream=True)
    if "--rp_serve_api" in sys.argv:
        sigterm_stops_the_local_server()
    runpod.serverless.start(CONFIG)
