"""The ``list_models`` action: the models a job may name, and which are loaded now."""

from __future__ import annotations

from f5_worker.job import Job
from f5_worker.schema import ListModelsRequest
from f5_worker.tts.model_pool import ModelPool


class ListModelsAction:
    def __init__(self, pool: ModelPool):
        self.pool = pool

    def __call__(self, request: ListModelsRequest, job: Job) -> dict:
        return {"models": self.pool.describe(), "default": self.pool.default,
                "max_loaded": self.pool.max_models}
