"""The job an action serves, as every action is called: ``action(request, job)``.

A front door (RunPod's queue: worker.py) takes a job, parses its request and hands both to the action. What
the job itself carries is its id, which names it in log lines and its result files in the bucket
(delivery.py), and whether its front door sends its items as they are made (``streams``). Its stop flag
and its progress reporter are not passed down: the front door sets them as context variables around the
work (stopping.py, progress.py), and they reach every thread the job starts with its context, however deep
the work that checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from f5_worker.errors import JobError


@dataclass(frozen=True)
class Job:
    id: str | None = None  # None where nothing names the job (a direct call in a test or a benchmark)
    # the items reach a reader as they come: STREAMING on a queue worker (without it RunPod's queue keeps one
    # result), always over HTTP
    streams: bool = False

    def require_streaming(self, field: str) -> None:
        """The refusal of a job that asks (by ``field``) to stream where its items cannot be."""
        if not self.streams:
            raise JobError(field, "this endpoint does not stream; set STREAMING=1 on it (every result is then "
                                  f"a list), or leave {field} out")
