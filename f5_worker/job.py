"""The job an action serves, as every action is called: ``action(request, job)``.

A front door (RunPod's queue: worker.py) takes a job, parses its request and hands both to the action. What
the job itself carries is its id, which names it in log lines and its result files in the bucket
(delivery.py). Its stop flag and its progress reporter are not passed down: the front door sets them as
context variables around the work (stopping.py, progress.py), and they reach every thread the job starts
with its context, however deep the work that checks them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    id: str | None = None  # None where nothing names the job (a direct call in a test or a benchmark)
