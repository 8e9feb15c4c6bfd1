"""RunPod entry point: load the models once, then serve jobs.

Runs as a serverless worker on RunPod, or locally with ``test_input.json`` /
``--test_input '{...}'`` / ``--rp_serve_api`` (runpod's own local modes).
"""

import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")  # runpod's own default is DEBUG, which logs job inputs

from f5_worker.fast_imports import quick_cpuinfo  # noqa: E402
from f5_worker.runpod_state import private_job_state  # noqa: E402

# runpod reads the CPU's name at import (in-process saves ~1 s, fast_imports.py), and takes the place of
# its jobs-in-progress file from the cwd, where one left by a killed worker would block this one (runpod_state.py)
with quick_cpuinfo(), private_job_state():
    import runpod

from f5_worker.models import ModelUnavailableError  # noqa: E402
from f5_worker.settings import SettingsError  # noqa: E402

logging.basicConfig(
    level=os.environ.get("RUNPOD_LOG_LEVEL", "INFO").upper(),
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    stream=sys.stderr,
)
log = logging.getLogger("f5_worker")

if __name__ != "__mp_main__":  # not in the alignment processes, which import this file when spawned
    try:
        from f5_worker.handler import Worker

        WORKER = Worker.from_env()
    except (ModelUnavailableError, SettingsError) as exc:
        log.error("cannot start: %s", exc)
        sys.exit(2)


RESULT_DUMP_DIR = os.environ.get("RESULT_DUMP_DIR")  # local debugging: runpod truncates logged results


async def handler(job):
    """RunPod calls this once per job, several at a time; the Worker never raises."""
    result = await WORKER.handle_async(job.get("input"), job_id=job.get("id"))
    if RESULT_DUMP_DIR:
        dump_result(Path(RESULT_DUMP_DIR), str(job.get("id", "job")), result)
    return result


def concurrency(current: int) -> int:
    """How many jobs this worker takes at once: MAX_CONCURRENCY, or none once its GPU has failed."""
    return WORKER.concurrency()


def dump_result(directory: Path, job_id: str, result: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in job_id)
    (directory / f"{safe_id}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency})
