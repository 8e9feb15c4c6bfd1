"""A synthesize job once the service has resolved it: what the unstreamed and the streamed path both start
from (service.SynthesisService.prepare), and the few rules both follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from f5_worker.alignment.aligner import Aligner
from f5_worker.config import Settings
from f5_worker.job import Job
from f5_worker.schema import SynthesizeRequest
from f5_worker.storage.stores import Stores
from f5_worker.synthesis.script import ScriptPart
from f5_worker.text.markup import Pause
from f5_worker.tts.loading import LoadedModels
from f5_worker.tts.sampler import SynthesisEngine, SynthesisParams


@dataclass(frozen=True)
class PreparedJob:
    """A synthesize job ready to sample, and what it runs on. ``script`` and ``parts`` carry each part's
    reference; ``params`` are the job's sampling parameters with its seed; ``timing`` holds the stages done
    so far (``reference_ms``), ``started`` when its work began (time.perf_counter)."""

    request: SynthesizeRequest
    job: Job
    engine: SynthesisEngine  # the model the job speaks with
    language: str  # chooses the normalizer and the aligner
    script: list[ScriptPart | Pause]
    parts: list[ScriptPart]
    params: SynthesisParams
    started: float
    timing: dict[str, float]
    aligner: Aligner
    stores: Stores
    settings: Settings

    @property
    def models(self) -> LoadedModels:
        return self.engine.models

    @property
    def aligns(self) -> bool:
        """Timings, captions or retries need the aligner; without them it is not run at all."""
        r = self.request
        return bool(r.word_timings or r.char_timings or r.caption_formats or r.max_retries)

    def voice_warnings(self) -> list[str]:
        """Each voice's reference warnings once, though several parts share the voice."""
        return list(dict.fromkeys(w for part in self.parts for w in part.ref.warnings))


def add_times(timing: Mapping[str, float], stage_ms: Mapping[str, float]) -> dict[str, float]:
    """``timing`` with each stage's milliseconds in ``stage_ms`` added (as ``<stage>_ms``), as a new dict: a
    stage seen before keeps its place, a new one comes last."""
    out = dict(timing)
    for stage, ms in stage_ms.items():
        out[f"{stage}_ms"] = out.get(f"{stage}_ms", 0.0) + ms
    return out


def finished_timing(timing: Mapping[str, float], started: float, now: float, duration: float) -> dict[str, float]:
    """A result's ``timing``: the stages' milliseconds rounded, ``total_ms`` since ``started``, and ``rtf``,
    the real-time factor (wall seconds per second of audio)."""
    total_ms = (now - started) * 1000
    out = {k: round(v, 2) for k, v in {**timing, "total_ms": total_ms}.items()}
    out["rtf"] = round(total_ms / 1000 / max(duration, 1e-6), 4)
    return out
