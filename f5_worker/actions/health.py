"""The ``health`` action: what this worker runs, on what, and whether its storage answers."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import f5_worker
from f5_worker.alignment.aligner import Aligner
from f5_worker.job import Job
from f5_worker.schema import HealthRequest
from f5_worker.storage.stores import Stores
from f5_worker.tts.loading import LoadedModels


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def english_backend(aligner: Aligner) -> str:
    """The backend that times English text: what ``ALIGNER=auto`` resolved to, in the values a job reports."""
    backend_for = getattr(aligner, "backend_for", None)
    return backend_for("en").name if backend_for else aligner.name


class HealthAction:
    def __init__(self, models: LoadedModels, aligner: Aligner, align_processes: int, stores: Stores,
                 catalogue: Callable[[], list[dict]]):
        """``models``: the default model; ``catalogue``: every registered model, as ``list_models`` shows it."""
        self.models = models
        self.catalogue = catalogue
        self.aligner = aligner
        self.align_processes = align_processes
        self.stores = stores

    def __call__(self, request: HealthRequest, job: Job) -> dict:
        import torch

        m = self.models
        return {
            "status": "ok",
            "model": m.name,
            "device": m.device,
            "dtype": str(m.dtype).removeprefix("torch."),
            "cuda_graphs": m.cuda_graphs and getattr(m.cfm.transformer, "failed", None) is None,
            "torch_compile": m.compiled,
            "sample_rate": m.sample_rate,
            "load_seconds": round(m.load_seconds, 3),
            "versions": {
                "torch": torch.__version__,
                "f5-tts": package_version("f5-tts"),
                "runpod": package_version("runpod"),
                "f5-worker": package_version("f5-worker") or f5_worker.__version__,
            },
            "gpu": torch.cuda.get_device_name(0) if m.device.startswith("cuda") else None,
            "aligner": english_backend(self.aligner),
            "align_processes": self.align_processes,
            "storage": self.stores.health(),
            "models": self.catalogue(),
        }
