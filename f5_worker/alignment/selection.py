"""Which aligner serves a request: the ``ALIGNER`` setting, and per language under ``auto``.

``auto`` chooses by accuracy, from one table (``ACCURACY``) of what backs each backend in each
language, which docs/timings.md quotes. The only module that imports the backends (sphinx, its
process pool, CTC, dtw), so the rest of the worker depends on ``types`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f5_worker.alignment.aligner import Aligner
from f5_worker.alignment.ctc import CtcAligner, find_weights
from f5_worker.alignment.dtw import DtwAligner
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.alignment.sphinx import SphinxAligner
from f5_worker.alignment.sphinx_pool import SphinxProcessPool, auto_processes
from f5_worker.config import ALIGNER_KINDS
from f5_worker.text.numbers import base_language
from f5_worker.timed_text import Alignment

__all__ = ["ACCURACY", "AutoAligner", "Accuracy", "auto_processes", "best_backend", "load_aligner",
           "sphinx_aligner"]

# What backs a figure, most trusted first. Figures are compared within a basis, never across one:
# MEASURED: measured here, an acoustic model on espeak-ng speech it was not built from;
# MEASURED_OWN_SYNTHESIZER: measured here, but the aligner's reference is espeak-ng itself, so the test
# speech is the reference's own kind and the figure is a best case (dtw; see docs/timings.md);
# PUBLISHED: others' measurement on human speech, not repeated here.
MEASURED = "measured on espeak-ng speech"
MEASURED_OWN_SYNTHESIZER = "measured on espeak-ng speech, against espeak-ng's own rendering"
PUBLISHED = "published, on human speech"
_BASIS_RANK = {MEASURED: 0, MEASURED_OWN_SYNTHESIZER: 1, PUBLISHED: 2}
ANY_LANGUAGE = "*"
_EVAL = "scripts/bench/eval_alignment.py"  # its speech for all six languages comes from one fixed seed


@dataclass(frozen=True)
class Accuracy:
    """How accurate a backend is in a language: mean absolute word-start error and what backs it."""

    backend: str  # "sphinx" | "dtw" | "ctc-multilingual" | "ctc"
    language: str  # base language tag, or ANY_LANGUAGE
    mean_error_ms: float  # milliseconds, mean absolute word-start error
    basis: str  # MEASURED | MEASURED_OWN_SYNTHESIZER | PUBLISHED
    source: str


ACCURACY: tuple[Accuracy, ...] = (
    Accuracy("sphinx", "en", 13.9, MEASURED, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "en", 6.0, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "fr", 11.0, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "de", 5.5, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "es", 5.5, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "it", 6.7, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    Accuracy("dtw", "pt", 7.0, MEASURED_OWN_SYNTHESIZER, f"{_EVAL} --language all --method all"),
    # MMS_FA's weights are not cached where the figures above were measured; upper end of the
    # published range (MontrealCorpusTools/mfa-models' English benchmarks).
    Accuracy("ctc-multilingual", ANY_LANGUAGE, 48.0, PUBLISHED, "MFA benchmarks, MMS_FA: 37-48 ms"),
)


def best_backend(language: str, available: set[str]) -> Accuracy | None:
    """The most trusted, then most accurate, figure for ``language`` among ``available`` backends;
    None when nothing backs any of them (the text's length is all there is)."""
    lang = base_language(language)
    known = [a for a in ACCURACY if a.backend in available and a.language in (lang, ANY_LANGUAGE)]
    return min(known, key=lambda a: (_BASIS_RANK[a.basis], a.mean_error_ms), default=None)


class AutoAligner:
    """``auto``: for each request's language, the backend ``best_backend`` picks among those loaded.

    English CTC (wav2vec2) is never picked: nothing here has measured it, and sphinx has been. It
    serves only when ``ALIGNER=ctc`` asks for it.
    """

    name = "auto"

    def __init__(self, *, device: str = "cpu", model_dir: str | None = None, processes: int = 0,
                 onsets: bool = True):
        self.ctc_multilingual = None
        if find_weights(model_dir, "mul"):
            self.ctc_multilingual = CtcAligner(device=device, model_dir=model_dir, multilingual=True)
        self.sphinx = sphinx_aligner(processes, onsets=onsets)
        self.dtw = DtwAligner(onsets=onsets)
        self.estimate = EstimateAligner()
        self.backends: dict[str, Aligner] = {"sphinx": self.sphinx, "dtw": self.dtw}
        if self.ctc_multilingual is not None:
            self.backends["ctc-multilingual"] = self.ctc_multilingual

    def backend_for(self, language: str) -> Aligner:
        best = best_backend(language, set(self.backends))
        return self.backends[best.backend] if best else self.estimate

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        return self.backend_for(language).align(audio, sample_rate, text, language=language)


def sphinx_aligner(processes: int = 0, *, onsets: bool = True) -> Aligner:
    """pocketsphinx in this process (``processes`` 0), or in a pool of worker processes."""
    if processes > 0:
        return SphinxProcessPool(processes, onsets=onsets)
    return SphinxAligner(onsets=onsets)


def load_aligner(kind: str = "auto", *, device: str = "cpu", model_dir: str | None = None,
                 processes: int = 0, onsets: bool = True) -> Aligner:
    """Build the aligner named by the ``ALIGNER`` setting once, at worker start.

    ``ctc`` fails loudly when its weights are not in the cache (nothing is
    downloaded here); ``auto`` quietly uses what is there.
    ``processes`` > 0 runs sphinx in that many worker processes; ``onsets`` (``ALIGN_ONSETS``) moves word
    starts and ends at pauses to where the sound rises and falls (alignment/onsets.py).
    """
    kind = (kind or "auto").lower()
    if kind == "auto":
        return AutoAligner(device=device, model_dir=model_dir, processes=processes, onsets=onsets)
    if kind == "ctc":
        return CtcAligner(device=device, model_dir=model_dir)
    if kind == "sphinx":
        return sphinx_aligner(processes, onsets=onsets)
    if kind == "dtw":
        return DtwAligner(onsets=onsets)
    if kind == "estimate":
        return EstimateAligner()
    raise ValueError(f"unknown aligner {kind!r}; expected one of {', '.join(ALIGNER_KINDS)}")
