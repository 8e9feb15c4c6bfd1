"""The loaded models: the default one, loaded and warmed at start and never evicted, and the others a job
names, loaded on first use and kept in a least-recently-used pool.

Each loaded model has its own ``SynthesisEngine`` (its sampler thread). A load runs in the thread of
the job that asked for it, outside the pool's lock, so jobs on models already loaded are not held up;
jobs asking for the same model meanwhile wait for that one load (single flight) instead of loading it
again. A load that fails fails the jobs waiting for it, and the next job tries again. Models of the same
Vocos share one vocoder. The pool is bounded by ``MAX_LOADED_MODELS`` and by ``MAX_MODEL_MEMORY_GB``
of weights; past either, the least recently used models other than the default and the one just
loaded are evicted: their sampler threads end after the jobs already queued, and their memory is
freed once the last job using them is done.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

from f5_worker import stopping
from f5_worker.config import Settings
from f5_worker.errors import JobError, free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory
from f5_worker.tts.loading import LoadedModels, VocoderCache, load_model
from f5_worker.tts.registry import ModelRegistry
from f5_worker.tts.sampler import SynthesisEngine
from f5_worker.tts.weights import ModelUnavailableError

log = logging.getLogger(__name__)

GPU_MEMORY_SHARE = 0.5  # MAX_MODEL_MEMORY_GB=0 on a GPU: weights may use this share of its memory
BYTES_PER_GB = 1e9
EVICT_WAIT_S = 1.0  # how long a load waits for an evicted model's thread to end (after its queued jobs)

EngineFactory = Callable[[LoadedModels], SynthesisEngine]


class ModelPool:
    """Model name -> its SynthesisEngine, loading and evicting as jobs ask for models."""

    def __init__(self, settings: Settings, registry: ModelRegistry, default: LoadedModels,
                 make_engine: EngineFactory):
        self.settings = settings
        self.registry = registry
        self.default = registry.default
        self.make_engine = make_engine
        self.vocoders = VocoderCache()
        self.vocoders.add(default.files.vocoder_dir, default.device, default.vocoder)
        self.max_models = max(1, settings.max_loaded_models)
        self.max_bytes = memory_budget(settings.max_model_memory_gb, default.device)
        self.loads = 0  # models loaded by this pool (the default, loaded before it, not counted)
        self.evictions = 0
        self._lock = threading.Lock()
        self._engines: OrderedDict[str, SynthesisEngine] = OrderedDict()  # least recently used first
        self._loading: dict[str, Future] = {}
        self._engines[self.default] = make_engine(default)

    @property
    def default_engine(self) -> SynthesisEngine:
        return self._engines[self.default]

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._engines)

    def engine(self, name: str | None) -> SynthesisEngine:
        """The engine of model ``name`` (None: the default), loaded now if it is not yet.

        Raises JobError("model", ...) for a name the registry lacks or a model that cannot be loaded.
        """
        name = name or self.default
        self.registry.entry(name)  # unknown: refused before any work
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                self._engines.move_to_end(name)
                return engine
            pending = self._loading.get(name)
            if pending is None:
                pending = self._loading[name] = Future()
                loads_here = True
            else:
                loads_here = False
        if loads_here:
            # the load runs in a thread of its own, outside the job's stop flag: a download takes as long as it
            # takes, and a job stopped meanwhile stops waiting at once while the load goes on for later jobs
            threading.Thread(target=self._load_for, args=(name, pending), daemon=True, name=f"load-{name}").start()
        else:
            log.info("waiting for model %s, which another job is loading", name)
        return stopping.result_unless_stopped(pending, f"model {name} was loaded", shared=True)

    def _load_for(self, name: str, pending: Future) -> None:
        """Load ``name`` and settle ``pending`` with its engine or its job's error (``load_error``)."""
        try:
            engine = self._load(name)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets it, the worker's policy decides
            with self._lock:
                del self._loading[name]
            pending.set_exception(load_error(name, exc))
            return
        with self._lock:
            self._engines[name] = engine
            del self._loading[name]
            evicted = self._evict(keep=name)
        if evicted:  # first: the new model's jobs start once the old one's memory is given back
            self._retire(evicted)
        pending.set_result(engine)

    def _retire(self, evicted: list[tuple[str, SynthesisEngine]]) -> None:
        """End the evicted engines' threads and give their memory back: at once when they are idle, else
        when their last job is done (a job that still holds one keeps its model until then)."""
        for name, old in evicted:
            ended = old.close(EVICT_WAIT_S)
            log.info("unloaded model %s (MAX_LOADED_MODELS=%d, weights budget %s)%s", name, self.max_models,
                     "none" if self.max_bytes is None else f"{self.max_bytes / BYTES_PER_GB:.1f} GB",
                     "" if ended else "; its queued jobs finish first")
        del old  # with the list emptied, nothing here holds them any more
        evicted.clear()
        gc.collect()  # the model's modules refer to each other: only the collector frees them
        free_gpu_memory()

    def _load(self, name: str) -> SynthesisEngine:
        started = time.perf_counter()
        log.info("loading model %s for a job", name)
        files = self.registry.model_files(name, self.settings)
        models = load_model(files, self.settings, self.vocoders)
        engine = self.make_engine(models)
        with self._lock:
            self.loads += 1
        log.info("model %s ready in %.2f s (%.0f MB of weights)", name, time.perf_counter() - started,
                 models.weight_bytes / 1e6)
        return engine

    def _evict(self, keep: str) -> list[tuple[str, SynthesisEngine]]:
        """Under the lock: drop least recently used models until within both bounds (never the default, never
        ``keep``). Returns the engines to close."""
        evicted = []

        def over() -> bool:
            weights = sum(e.models.weight_bytes for e in self._engines.values())
            return len(self._engines) > self.max_models or (self.max_bytes is not None and weights > self.max_bytes)

        for name in list(self._engines):
            if not over():
                break
            if name in (self.default, keep):
                continue
            evicted.append((name, self._engines.pop(name)))
            self.evictions += 1
        return evicted

    def describe(self) -> list[dict]:
        """Every registered model, for ``list_models`` and ``health``."""
        loaded = set(self.loaded())
        return [{**entry.public(), "loaded": name in loaded, "default": name == self.default}
                for name, entry in self.registry.entries.items()]


def load_error(name: str, exc: BaseException) -> BaseException:
    """The job's error for a model that could not be loaded: ``model: "<name>": <why>``. Anything but a
    plain failure (a stopped job, a CUDA fault the worker must see) passes unchanged."""
    if isinstance(exc, (JobError, stopping.JobStopped)) or not isinstance(exc, Exception) or is_gpu_failure(exc) \
            or is_gpu_out_of_memory(exc):
        return exc
    prefix = f"{json.dumps(name)}: "
    why = str(exc) if isinstance(exc, ModelUnavailableError) else f"cannot be loaded: {type(exc).__name__}: {exc}"
    return JobError("model", why if why.startswith(prefix) else prefix + why)


def memory_budget(gigabytes: float, device: str) -> int | None:
    """Bytes of weights the pool may keep loaded; None for no bound (0 on a CPU)."""
    if gigabytes > 0:
        return int(gigabytes * BYTES_PER_GB)
    if not device.startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * GPU_MEMORY_SHARE)
