"""A long job's progress (f5_worker/progress.py): sent to the job's reporter, never failing the job, and only for
jobs long enough that someone would read it. The reports as RunPod's /status shows them, posted by runpod's
worker loop, are in test_runpod_worker.py."""

import threading
from contextvars import copy_context

import pytest

from f5_worker import progress

JOB = {"nfe_step": 4, "max_retries": 0, "seed": 3, "word_timings": False, "caption_formats": []}


def test_a_report_goes_to_the_reporter_of_its_context_and_nowhere_outside_it():
    got = []
    progress.report({"stage": "before"})  # no reporter: nothing to do, and no error
    with progress.reporting(got.append):
        progress.report({"stage": "in"})
        context = copy_context()  # as a job's thread is started: with the job's context
    progress.report({"stage": "after"})
    thread = threading.Thread(target=context.run, args=(progress.report, {"stage": "thread"}))
    thread.start()
    thread.join()
    assert got == [{"stage": "in"}, {"stage": "thread"}]


def test_a_reporter_that_fails_never_fails_the_job(caplog):
    def unreachable(_: dict) -> None:
        raise ConnectionError("RunPod's job API did not answer")

    with progress.reporting(unreachable), caplog.at_level("WARNING"):
        progress.report({"stage": "sampling"})
    assert "could not report progress" in caplog.text


def test_only_a_job_planned_as_long_as_min_audio_seconds_reports_each_stage(worker, monkeypatch):
    got = []
    with progress.reporting(got.append):
        short = worker.handle({**JOB, "text": "A short one."})
    assert "audio_base64" in short and got == []  # too short to report
    monkeypatch.setattr(progress, "MIN_AUDIO_SECONDS", 0.0)
    with progress.reporting(got.append):
        out = worker.handle({**JOB, "text": "A short one.", "word_timings": True})  # timings: it aligns too
    assert got[0] == {"stage": "sampling", "attempt": 1, "of": 1, "chunks": out["chunks"]}
    assert [report["stage"] for report in got] == ["sampling", "aligning"]
    assert got[1]["audio_seconds"] == pytest.approx(out["duration"], abs=1e-3)
