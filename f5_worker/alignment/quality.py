"""The quality gate: does the audio say the text? Aligning is how we know, so it lives here.

F5-TTS sometimes skips, repeats or garbles words. The aligner's score tells;
``synthesize_until_aligned`` re-samples with a new seed while it is too low.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from f5_worker import stopping
from f5_worker.alignment.aligner import Aligner
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.errors import free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory
from f5_worker.limits import draw_seed
from f5_worker.timed_text import Alignment

log = logging.getLogger(__name__)

# ``alignment_mismatch`` default: the overall score below which audio and text disagree.
MISMATCH_SCORE = 0.6
SILENT_PEAK = 1e-3  # audio whose loudest sample stays below this (full scale 1.0) says nothing at all


def is_silent(wave: np.ndarray) -> bool:
    """No sound to speak of. An aligner may still score silence high (sphinx gives about 0.88 to pure
    zeros: its silence model explains every frame), so the gate checks for it itself."""
    return wave.size == 0 or float(np.max(np.abs(wave))) < SILENT_PEAK


def align_audio(aligner: Aligner, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
    """The one entry point the ``align`` action, synthesize and the accuracy script all use.

    Falls back to estimated timings if the backend fails, so a job never dies
    on alignment; the fallback is visible as ``estimated=True``. A CUDA error is
    the exception: it passes, as the GPU is lost for every later job too; so does
    a stop (JobStopped), which ends the job.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    t0 = time.perf_counter()
    try:
        result = aligner.align(audio, sample_rate, text, language=language)
    except stopping.JobStopped:
        raise  # the job ends: no timings are owed
    except Exception as exc:  # noqa: BLE001 - alignment must never fail a job; the fallback is flagged
        if is_gpu_failure(exc):
            raise  # the GPU is lost for every later job too: Worker.handle has the worker replaced
        if is_gpu_out_of_memory(exc):
            free_gpu_memory()  # the audio already synthesised is worth more than exact timings: estimate
        log.exception("aligner %s failed; estimating timings", getattr(aligner, "name", "?"))
        result = EstimateAligner().align(audio, sample_rate, text, language=language)
    result.align_seconds = time.perf_counter() - t0
    return result


def alignment_mismatch(alignment: Alignment, threshold: float = MISMATCH_SCORE) -> bool:
    """True when the audio evidently does not say the text (worth re-synthesising).

    Timings estimated because no aligner fits the language carry no evidence
    either way and never count; a real backend that found no path through the
    text (``estimated`` with a backend other than "estimate") always does. A score that is no
    evidence (``score_is_evidence`` false: dtw's likeness to espeak-ng's voice) never does.
    """
    if alignment.estimated:
        return alignment.backend != "estimate"
    return alignment.score_is_evidence and alignment.score < threshold


def passes_gate(wave: np.ndarray, alignment: Alignment) -> bool:
    """The audio says the text: it has sound, and its alignment shows no mismatch."""
    return not is_silent(np.asarray(wave)) and not alignment_mismatch(alignment)


def gate_rank(wave: np.ndarray, alignment: Alignment) -> tuple[bool, float]:
    """Orders the attempts that all failed the gate, best last: any sound above silence, then by score."""
    return not is_silent(np.asarray(wave)), alignment.score


@dataclass
class GatedResult:
    """The attempt a quality-gated synthesis keeps."""

    wave: np.ndarray
    sample_rate: int
    alignment: Alignment
    seed: int
    retries: int  # attempts after the first


def kept_attempt(kept: GatedResult | None, attempt: GatedResult) -> GatedResult:
    """The attempt to keep of the one kept so far (None before the first) and a new one: the new one when it
    passes the gate or ranks above (``gate_rank``). One rule for a single text's retries and for a script's
    parts re-sampled in rounds, so both keep the same attempt."""
    if kept is None or passes_gate(attempt.wave, attempt.alignment):
        return attempt
    return attempt if gate_rank(attempt.wave, attempt.alignment) > gate_rank(kept.wave, kept.alignment) else kept


def synthesize_until_aligned(
    attempt: Callable[[int], tuple[np.ndarray, int]],
    aligner: Aligner,
    text: str,
    *,
    seed: int,
    max_retries: int,
    language: str = "en",
    new_seed: Callable[[], int] | None = None,
) -> GatedResult:
    """Synthesise with ``attempt(seed)``, align the final audio, and re-sample with a new seed
    while the audio does not match the text, up to ``max_retries`` times.

    Returns the first attempt that passes, else the best-scoring one. Silent audio never passes, and
    ranks below any attempt with sound. ``attempt`` must return the final audio (after cross-fades and
    silence removal), so the timings match what is heard.
    """
    new_seed = new_seed or draw_seed
    best: GatedResult | None = None
    for n in range(max_retries + 1):
        wave, sample_rate = attempt(seed)
        alignment = align_audio(aligner, wave, sample_rate, text, language=language)
        best = kept_attempt(best, GatedResult(wave, sample_rate, alignment, seed, n))
        if passes_gate(wave, alignment):
            break
        seed = new_seed()
    best.retries = n
    return best
