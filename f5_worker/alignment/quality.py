"""The quality gate: does the audio say the text? Aligning is how we know, so it lives here.

F5-TTS sometimes skips, repeats or garbles words. The aligner's score tells;
``synthesize_until_aligned`` re-samples with a new seed while it is too low, for one text or many.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np

from f5_worker import stopping
from f5_worker.alignment.aligner import Aligner
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.errors import free_gpu_memory, is_gpu_failure, is_gpu_out_of_memory
from f5_worker.timed_text import Alignment

log = logging.getLogger(__name__)

# ``alignment_mismatch`` default: the overall score below which audio and text disagree.
MISMATCH_SCORE = 0.6
SILENT_PEAK = 1e-3  # audio whose loudest sample stays below this (full scale 1.0) says nothing at all
MAX_PARALLEL_ALIGNMENTS = 4  # texts of one job aligned at once (threads; the aligners serialise what they must)


def is_silent(wave: np.ndarray) -> bool:
    """No sound to speak of. An aligner may still score silence high (sphinx gives about 0.88 to pure
    zeros: its silence model explains every frame), so the gate checks for it itself."""
    return wave.size == 0 or float(np.max(np.abs(wave))) < SILENT_PEAK


def align_audio(aligner: Aligner, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
    """The one entry point the ``align`` action, synthesize and the accuracy command (``eval_alignment.py``) all use.

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


@dataclass(frozen=True)
class GatedResult:
    """The attempt a quality-gated synthesis keeps."""

    wave: np.ndarray
    sample_rate: int
    alignment: Alignment
    seed: int
    retries: int  # attempts after the first
    attempt: int = 0  # which attempt at its text it is (0: the first)
    aligning_s: float = 0.0  # wall seconds spent aligning every attempt at its text (a job's alignment_ms)


def kept_attempt(kept: GatedResult | None, attempt: GatedResult) -> GatedResult:
    """The attempt to keep of the one kept so far (None before the first) and a new one: the new one when it
    passes the gate or ranks above (``gate_rank``)."""
    if kept is None or passes_gate(attempt.wave, attempt.alignment):
        return attempt
    return attempt if gate_rank(attempt.wave, attempt.alignment) > gate_rank(kept.wave, kept.alignment) else kept


def synthesize_until_aligned(
    texts: Sequence[str],
    sample: Callable[[list[int], int], Sequence[tuple[np.ndarray, int]]],
    aligner: Aligner,
    *,
    seed: int,
    max_retries: int,
    new_seed: Callable[[], int],
    language: str = "en",
) -> list[GatedResult]:
    """The quality gate, in rounds over ``texts``: ``sample(indices, seed)`` gives the final audio (after
    cross-fades and silence removal, so the timings match what is heard) and its sample rate for each text
    of ``indices``, in that order, sampled with ``seed``. Each round's audio is aligned (several texts in
    threads, in the job's context), each text keeps its best attempt (``kept_attempt``), and the texts whose
    audio does not say them are sampled again in the next round with a new seed, at most ``max_retries``
    times. One loop for a single text, a script's sampling runs and a stream's pieces, so all three keep the
    same attempt; a script's failing runs are re-sampled together, in as few calls as they fit.

    A new seed is drawn after every round that leaves a text failing, the last one too: a stream draws its
    pieces' seeds from one generator, and the seeds a piece is given must not depend on how this loop ends.
    Each result's ``retries`` is the number of attempts after its text's first. Silent audio never passes,
    and ranks below any attempt with sound.
    """
    kept: dict[int, GatedResult] = {}
    aligning = [0.0] * len(texts)
    pending = list(range(len(texts)))
    workers = min(len(texts), MAX_PARALLEL_ALIGNMENTS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="align") if workers > 1 else nullcontext() as pool:
        for attempt in range(max_retries + 1):
            said = sample(pending, seed)
            stopping.check("alignment")
            if pool is None:
                found = [align_audio(aligner, wave, rate, texts[i], language=language)
                         for i, (wave, rate) in zip(pending, said)]
            else:
                futures = [pool.submit(contextvars.copy_context().run, align_audio, aligner, wave, rate, texts[i],
                                       language=language) for i, (wave, rate) in zip(pending, said)]
                found = [future.result() for future in futures]
            failed = []
            for i, (wave, rate), alignment in zip(pending, said, found):
                aligning[i] += alignment.align_seconds
                tried = GatedResult(wave, rate, alignment, seed, attempt, attempt=attempt)
                kept[i] = replace(kept_attempt(kept.get(i), tried), retries=attempt, aligning_s=aligning[i])
                if not passes_gate(wave, alignment):
                    failed.append(i)
            pending = failed
            if not pending:
                break
            seed = new_seed()
    return [kept[i] for i in range(len(texts))]
