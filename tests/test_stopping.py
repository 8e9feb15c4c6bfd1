"""Jobs RunPod stops (cancel, timeout) stop their work, as runpod-python stops them: by cancelling the task.

runpod-python's ``JobScaler.stop_job`` calls ``task.cancel()`` on the job's task;
these tests do the same to ``Worker.handle_async`` and watch where the work ends.
tests/test_runpod_worker.py does it through the whole worker loop over HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time

import pytest
import soundfile as sf

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, wait_for_log
from f5_worker import stopping
from f5_worker.tts.reference import prepare_reference
from f5_worker.tts.sampler import SynthesisEngine, SynthesisParams

LONG_JOB = {"text": "Nothing here is ever said twice. " * 5, "nfe_step": 64, "seed": 3,
            "word_timings": False, "caption_formats": [], "max_retries": 0}
SHORT_JOB = {"text": "A short one.", "seed": 4, "nfe_step": 8, "max_retries": 0}


class StepWatch:
    """Counts the DiT's calls (one a sampling step) and runs an action at a given step, in the sampler thread."""

    def __init__(self, worker, at_step: int, action):
        self.calls, self.at_step, self.action = 0, at_step, action
        self.reached = threading.Event()
        self.handle = worker.models.cfm.transformer.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.calls += 1
        if self.calls == self.at_step:
            self.reached.set()
            self.action()

    def remove(self):
        self.handle.remove()


def test_a_stopped_job_ends_at_the_next_sampling_step_and_the_next_job_works(worker, caplog):
    queued = []  # the job's request, for its stop flag

    async def scenario():
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(worker.handle_async(dict(LONG_JOB), job_id="long-1"))

        def cancel_during_step_3():  # as JobScaler.stop_job; the step goes on once the cancel has raised the flag
            loop.call_soon_threadsafe(task.cancel)
            queued[0].stop.wait(60)

        watch = StepWatch(worker, 3, cancel_during_step_3)
        worker.engine.on_queued = queued.append
        try:
            with pytest.raises(asyncio.CancelledError):
                await task
            pattern = r"job long-1: stopped: .*at step (\d+) of 64"
            return await asyncio.to_thread(wait_for_log, lambda: caplog.text, pattern), watch
        finally:
            worker.engine.on_queued = None
            watch.remove()

    with caplog.at_level("INFO"):
        match, watch = asyncio.run(scenario())
    assert int(match.group(1)) == 4  # the flag went up during step 3: the next step ends the run
    assert watch.calls == 3  # the step that saw the flag did not run
    assert "job long-1: stopped by RunPod" in caplog.text
    result = worker.handle(dict(SHORT_JOB))
    assert "error" not in result and result["duration"] > 0


AHEAD_JOB = {**LONG_JOB, "text": "The job ahead.", "nfe_step": 8}


def test_a_job_stopped_while_queued_is_never_sampled_and_the_job_ahead_finishes(worker, caplog):
    release = threading.Event()

    async def scenario():
        first = asyncio.create_task(worker.handle_async(dict(AHEAD_JOB), job_id="first"))
        sampling = StepWatch(worker, 2, lambda: release.wait(60))  # the first job's run waits at step 2
        waiting = threading.Event()
        try:
            assert await asyncio.to_thread(sampling.reached.wait, 60), "the first job was never sampled"
            worker.engine.on_queued = lambda request: waiting.set()
            queued = asyncio.create_task(worker.handle_async(dict(SHORT_JOB), job_id="queued"))
            assert await asyncio.to_thread(waiting.wait, 60), "the second job never reached the sampler's queue"
            queued.cancel()
            await asyncio.to_thread(wait_for_log, lambda: caplog.text, r"job queued: stopped: .*\(before sampling\)")
            steps_when_queued_ended = sampling.calls
            release.set()
            return await first, steps_when_queued_ended
        finally:
            worker.engine.on_queued = None
            release.set()
            sampling.remove()

    with caplog.at_level("INFO"):
        result, steps_when_queued_ended = asyncio.run(scenario())
    assert steps_when_queued_ended == 2  # it ended while the first job's run was held at step 2
    assert "error" not in result and result["duration"] > 0
    batches = re.findall(r"sampling (\d+) job\(s\)", caplog.text)
    assert batches == ["1"]  # only the first job was ever sampled


def test_a_job_stopped_after_sampling_skips_alignment(worker):
    """The flag goes up during the last step (set from the sampler thread, so the timing is exact)."""
    job = {**SHORT_JOB, "word_timings": True, "nfe_step": 8}
    with stopping.stop_flag() as flag:
        watch = StepWatch(worker, 8, flag.set)
        try:
            result = worker.handle(job, job_id="late")
        finally:
            watch.remove()
    assert watch.calls == 8  # sampling ran to the end
    assert result == {"error": "stopped: RunPod cancelled the job or its time ran out (before alignment)"}


def test_jobs_that_are_not_stopped_are_not_affected(worker):
    async def both():
        return await asyncio.gather(worker.handle_async(dict(SHORT_JOB), job_id="a"),
                                    worker.handle_async(dict(SHORT_JOB), job_id="b"))

    a, b = asyncio.run(both())
    assert a["audio_base64"] == b["audio_base64"] == worker.handle(dict(SHORT_JOB))["audio_base64"]


@pytest.fixture(scope="module")
def batching_engine(worker):
    """A batch closes once both jobs are in it; the long window only keeps a lost job from hanging the test."""
    return SynthesisEngine(worker.models, max_batch_jobs=2, max_wait_s=120)


@pytest.fixture(scope="module")
def reference():
    wave, sr = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    return prepare_reference(wave, sr, DEFAULT_VOICE_TEXT)


@pytest.mark.parametrize("stop_both", [False, True])
def test_a_batch_goes_on_while_any_of_its_jobs_is_wanted(worker, batching_engine, reference, stop_both):
    params = SynthesisParams(nfe_step=16, seed=5)
    flags: list[threading.Event] = []
    outcomes: dict[int, object] = {}

    def job(i: int):
        with stopping.stop_flag() as flag:
            flags.append(flag)
            try:
                outcomes[i] = batching_engine.synthesize(reference, f"Job number {i} speaks.", params)
            except stopping.JobStopped as exc:
                outcomes[i] = exc

    def stop():
        for flag in flags[: 2 if stop_both else 1]:
            flag.set()

    watch = StepWatch(worker, 2, stop)
    try:
        threads = [threading.Thread(target=job, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        watch.remove()
    assert sorted(outcomes) == [0, 1]
    if stop_both:
        assert all(isinstance(o, stopping.JobStopped) for o in outcomes.values())
        assert all("during sampling, at step 3 of 16" in str(o) for o in outcomes.values())
        assert watch.calls == 2
    else:  # the batch-mate still wants the audio: sampling runs to the end for both
        assert [o.batch_jobs for o in outcomes.values()] == [2, 2]
        assert watch.calls == 16


def test_a_job_stopped_before_it_reaches_the_sampler_is_dropped_there(worker, reference, caplog):
    """The sampler may see the flag before the job's own thread does; either way the job ends as stopped."""
    with caplog.at_level("INFO"), stopping.stop_flag() as flag:
        flag.set()
        for _ in range(5):
            with pytest.raises(stopping.JobStopped, match=r"\(before sampling\)"):
                worker.engine.synthesize(reference, "Never sampled.", SynthesisParams(nfe_step=4, seed=1))
    assert "sampling 1 job(s)" not in caplog.text


def test_a_job_stopped_before_its_thread_starts_does_nothing(worker, caplog):
    with caplog.at_level("INFO"), stopping.stop_flag() as flag:
        flag.set()
        result = worker.handle(dict(SHORT_JOB), job_id="late-start")
    assert result == {"error": "stopped: RunPod cancelled the job or its time ran out (before start)"}
    assert "late-start: synthesize" not in caplog.text


def test_a_timeout_error_from_the_sampler_is_a_failure_not_a_reason_to_wait(worker):
    """It used to read as the wait's own poll timeout, and the job waited forever."""
    def time_out(module, args):
        handle.remove()
        raise TimeoutError("a compile worker timed out")

    handle = worker.models.cfm.transformer.register_forward_pre_hook(time_out)
    results = []

    def job():  # as handle_async runs it: in a thread, under a stop flag (the flag is what polls)
        with stopping.stop_flag():
            results.append(worker.handle(dict(SHORT_JOB), job_id="t"))

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    thread.join(30)
    assert results == [{"error": "internal: TimeoutError: a compile worker timed out"}]


# --- align: a stop ends every phase within moments, not at the alignment's or the download's end -------------

def long_recording(repeats: int) -> tuple[str, str]:
    """The example voice ``repeats`` times with pauses between (base64 WAV at 16 kHz) and its transcript: over
    30 s, so sphinx makes a first pass over all of it (one decode) and then aligns it piece by piece."""
    import base64
    import io

    import numpy as np

    from f5_worker.audio import resample

    wave, rate = sf.read(DEFAULT_VOICE_WAV, dtype="float32")
    wave = resample(wave, rate, 16000)
    wave = np.tile(np.concatenate([wave, np.zeros(4800, np.float32)]), repeats)
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode(), " ".join([DEFAULT_VOICE_TEXT] * repeats)


RAN_BEFORE_THE_STOP_S = 3.0


def seconds_to_stop(worker, caplog, job: dict, job_id: str, run_s: float, stage: str) -> float:
    """Run ``job`` as RunPod does (``handle_async``), cancel it ``run_s`` after its log says it began, and
    return how long it took from the cancel to its log saying it stopped ``stage``."""

    async def scenario() -> float:
        task = asyncio.create_task(worker.handle_async(job, job_id=job_id))
        await asyncio.to_thread(wait_for_log, lambda: caplog.text, rf"job {job_id}: {job['action']} ")
        await asyncio.sleep(run_s)
        stopped_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(wait_for_log, lambda: caplog.text, rf"job {job_id}: stopped: .*\({stage}\)")
        return time.monotonic() - stopped_at

    with caplog.at_level("INFO"):
        return asyncio.run(scenario())


def test_a_job_stopped_while_sphinx_aligns_it_ends_at_once_and_its_decode_is_killed(worker, caplog):
    """30 repeats is close to three minutes of speech: 3 s into its alignment there is most of it left. The job
    used to run to the end of its decode (its result thrown away) holding the aligner; now the process that
    decodes it is killed and the job ends sooner after the stop than it had run before it."""
    audio_b64, text = long_recording(30)
    job = {"action": "align", "audio_base64": audio_b64, "text": text, "caption_formats": []}
    pool = worker.aligner.sphinx
    before = pool.pids()

    # decoding the WAV takes a fraction of RAN_BEFORE_THE_STOP_S: it aligns when stopped
    ended_in = seconds_to_stop(worker, caplog, job, "align-stopped", RAN_BEFORE_THE_STOP_S, "during alignment")
    assert ended_in < RAN_BEFORE_THE_STOP_S / 2, ended_in
    assert before and before.isdisjoint(pool.pids())  # killed, not left to finish its decode
    out = worker.handle({"action": "align", "audio_base64": long_recording(1)[0], "text": DEFAULT_VOICE_TEXT})
    assert [w["word"] for w in out["words"]] == DEFAULT_VOICE_TEXT.split()  # a new process serves the next job
    assert out["timings_estimated"] is False


def test_a_job_waiting_for_a_busy_aligner_stops_waiting(worker, caplog):
    """The one sphinx process of a CPU worker aligns one job; a second, stopped while it waits, ends at once and
    leaves the first to finish. (It used to wait for the in-process aligner's lock, then align all the same.)"""
    audio_b64, text = long_recording(15)
    first = {"action": "align", "audio_base64": audio_b64, "text": text, "caption_formats": []}
    second = {"action": "align", "audio_base64": long_recording(1)[0], "text": DEFAULT_VOICE_TEXT}

    async def scenario():
        ahead = asyncio.create_task(worker.handle_async(first, job_id="ahead"))
        await asyncio.to_thread(wait_for_log, lambda: caplog.text, r"job ahead: align ")
        await asyncio.sleep(1.0)
        waiting = asyncio.create_task(worker.handle_async(second, job_id="waiting"))
        await asyncio.to_thread(wait_for_log, lambda: caplog.text, r"job waiting: align ")
        await asyncio.sleep(0.5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.to_thread(wait_for_log, lambda: caplog.text, r"job waiting: stopped: .*\(before alignment\)")
        return ahead.done(), await ahead

    with caplog.at_level("INFO"):
        ahead_done_when_waiting_stopped, result = asyncio.run(scenario())
    assert not ahead_done_when_waiting_stopped
    assert len(result["words"]) == len(text.split()) and result["timings_estimated"] is False


def test_a_job_stopped_while_its_audio_downloads_ends_before_the_download_would(worker, caplog, monkeypatch):
    """A server that sends the file a byte at a time, each well inside the socket timeout: only the download's
    deadline (DOWNLOAD_TIMEOUT_S) would end it. A stop ends it at once."""
    import http.server

    monkeypatch.setenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", "true")
    cut = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(100000):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:  # the worker hung up
                cut.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    job = {"action": "align", "audio_url": f"http://127.0.0.1:{server.server_address[1]}/a.wav", "text": "Hello."}

    try:
        ended_in = seconds_to_stop(worker, caplog, job, "download-stopped", 1.0, "during the download")
    finally:
        server.shutdown()
        server.server_close()
    assert ended_in < worker.settings.download_timeout_s / 4, ended_in
    assert cut.wait(10), "the worker never hung up"


def test_a_stop_ends_decoding_and_every_aligner_in_the_job_thread(worker):
    """What runs in the job's own thread looks at the flag as it goes: decoding, dtw, sphinx in the worker process
    (between its pieces) and the quality gate's ``align_audio``, which estimates timings when an aligner fails
    but must not turn a stop into estimated timings."""
    from f5_worker import audio
    from f5_worker.alignment.dtw import DtwAligner
    from f5_worker.alignment.quality import align_audio
    from f5_worker.alignment.sphinx import SphinxAligner

    audio_b64, text = long_recording(8)
    data = __import__("base64").b64decode(audio_b64)
    wave = audio.decode(data, "audio_base64").wave
    with stopping.stop_flag() as flag:
        flag.set()
        with pytest.raises(stopping.JobStopped, match="while decoding audio"):
            audio.decode(data, "audio_base64")
        for aligner in (DtwAligner(), SphinxAligner(), worker.aligner):
            with pytest.raises(stopping.JobStopped, match=r"\((during|before) alignment\)"):
                align_audio(aligner, wave, 16000, text, language="en")


def test_a_stopped_job_says_why_its_own_front_door_stopped_it():
    """The HTTP server stops a job when its client leaves or the server stops, not RunPod: the error says so,
    also for a stop the sampler raised outside the job (said again in the job's context)."""
    outside = concurrent.futures.ThreadPoolExecutor(1)
    try:
        def sampler_stops():
            raise stopping.JobStopped("during sampling, at step 2 of 4")

        context, _ = stopping.flagged_context(stopping.HTTP_STOP)
        future = outside.submit(sampler_stops)
        with pytest.raises(stopping.JobStopped) as caught:
            context.run(stopping.result_unless_stopped, future, "alignment")
        assert str(caught.value) == ("stopped: its client went away, or the server is stopping "
                                     "(during sampling, at step 2 of 4)")
        with stopping.stop_flag():
            assert str(stopping.JobStopped("before start")).startswith("stopped: RunPod cancelled the job")
    finally:
        outside.shutdown()
