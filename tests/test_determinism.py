"""A seed gives the same audio under any load (docs/architecture.md, "Concurrency, batching and seeds"), with the default MAX_BATCH_JOBS=1.

The jobs below are all waiting for the sampler at once before any of them is sampled, so whatever a job
does before sampling (planning, seeding, reading the reference) happens while the others are doing it too.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

SEEDED = {"text": "The same seed again.", "seed": 1234, "nfe_step": 4, "max_retries": 0}
OTHERS = [
    {"text": "Something else entirely, and longer than the seeded job.", "seed": 7, "nfe_step": 4, "max_retries": 0},
    {"text": "A third voice.", "seed": 99, "nfe_step": 6, "max_retries": 0, "speed": 1.3},
]


class SamplerGate:
    """Holds the sampler inside its first sampling call until released (a hook on the DiT, in the sampler thread)."""

    def __init__(self, worker):
        self.entered, self.release = threading.Event(), threading.Event()
        self.handle = worker.models.cfm.transformer.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(120), "the gate was never released"

    def remove(self):
        self.release.set()
        self.handle.remove()


def test_a_seed_gives_the_same_audio_when_jobs_wait_and_run_together(worker):
    assert worker.engine.max_batch_jobs == 1  # the default this promise is made for
    alone = worker.handle(dict(SEEDED), job_id="alone")
    assert "error" not in alone, alone

    # in the queue, in this order: seeded, other, seeded, other; a fifth job holds the sampler meanwhile
    order = [SEEDED, OTHERS[0], SEEDED, OTHERS[1]]
    queued = threading.Semaphore(0)
    with ThreadPoolExecutor(len(order) + 1) as pool:
        gate = SamplerGate(worker)
        worker.engine.on_queued = lambda request: queued.release()
        try:
            blocker = pool.submit(worker.handle, {**SEEDED, "seed": 5, "text": "Holding the sampler."}, "blocker")
            assert queued.acquire(timeout=120) and gate.entered.wait(120), "the sampler never started"
            futures = []
            for i, job in enumerate(order):
                futures.append(pool.submit(worker.handle, dict(job), f"load-{i}"))
                assert queued.acquire(timeout=120), f"job {i} never reached the sampler's queue"
        finally:  # before the pool waits for its jobs
            worker.engine.on_queued = None
            gate.remove()
        outs = [f.result(timeout=300) for f in futures]
        assert "error" not in blocker.result(timeout=300)

    assert all("error" not in o for o in outs), outs
    assert outs[0]["audio_base64"] == outs[2]["audio_base64"] == alone["audio_base64"]
    assert outs[0]["seed"] == outs[2]["seed"] == SEEDED["seed"]
    # the load was real: other jobs, other audio
    assert len({o["audio_base64"] for o in outs}) == 3
