"""Which aligner serves a request: the ``ALIGNER`` setting, and per language under ``auto``.

The only module that imports the backends (sphinx, its process pool, CTC), so
the rest of the worker depends on ``types`` alone.
"""

from __future__ import annotations

import numpy as np

from f5_worker.alignment.ctc import CtcAligner, find_weights
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.alignment.sphinx import SphinxAligner
from f5_worker.alignment.sphinx_pool import SphinxProcessPool, auto_processes
from f5_worker.alignment.types import Aligner, Alignment
from f5_worker.config import ALIGNER_KINDS

__all__ = ["AutoAligner", "auto_processes", "load_aligner", "sphinx_aligner"]


class AutoAligner:
    """``auto``: the best backend available for each request's language."""

    name = "auto"

    def __init__(self, *, device: str = "cpu", model_dir: str | None = None, processes: int = 0):
        self.ctc = CtcAligner(device=device, model_dir=model_dir) if find_weights(model_dir, "en") else None
        self.ctc_multilingual = None
        if find_weights(model_dir, "mul"):
            self.ctc_multilingual = CtcAligner(device=device, model_dir=model_dir, multilingual=True)
        self.sphinx = sphinx_aligner(processes if self.ctc is None else 0)  # with ctc, English never uses it
        self.estimate = EstimateAligner()

    def backend_for(self, language: str) -> Aligner:
        english = language.lower().split("-")[0] == "en"
        if english and self.ctc is not None:
            return self.ctc
        if not english and self.ctc_multilingual is not None:
            return self.ctc_multilingual
        if english:
            return self.sphinx
        return self.estimate

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        return self.backend_for(language).align(audio, sample_rate, text, language=language)


def sphinx_aligner(processes: int = 0) -> Aligner:
    """pocketsphinx in this process (``processes`` 0), or in a pool of worker processes."""
    if processes > 0:
        return SphinxProcessPool(processes)
    return SphinxAligner()


def load_aligner(kind: str = "auto", *, device: str = "cpu", model_dir: str | None = None,
                 processes: int = 0) -> Aligner:
    """Build the aligner named by the ``ALIGNER`` setting once, at worker start.

    ``ctc`` fails loudly when its weights are not in the cache (nothing is
    downloaded here); ``auto`` quietly falls back to sphinx, then to estimates.
    ``processes`` > 0 runs sphinx in that many worker processes.
    """
    kind = (kind or "auto").lower()
    if kind == "auto":
        return AutoAligner(device=device, model_dir=model_dir, processes=processes)
    if kind == "ctc":
        return CtcAligner(device=device, model_dir=model_dir)
    if kind == "sphinx":
        return sphinx_aligner(processes)
    if kind == "estimate":
        return EstimateAligner()
    raise ValueError(f"unknown aligner {kind!r}; expected one of {', '.join(ALIGNER_KINDS)}")
