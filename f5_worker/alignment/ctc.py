"""Forced alignment with a wav2vec2 CTC acoustic model (``torchaudio.functional.forced_align``).

English uses torchaudio's ``WAV2VEC2_ASR_BASE_960H`` (letters plus a ``|`` word
separator); other languages use ``MMS_FA`` (romanised letters; its weights are
CC-BY-NC) with text romanised by pypinyin for Chinese and unidecode otherwise.
Weights are only ever read from the model cache: nothing here downloads.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
import torchaudio.functional as F
from unidecode import unidecode

from f5_worker import stopping
from f5_worker.alignment.aligner import WordTiming, backend_input, build_alignment
from f5_worker.alignment.estimate import EstimateAligner, unalignable
from f5_worker.timed_text import Alignment

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # wav2vec2's feature stride at 16 kHz: 20 ms frames
WINDOW_S = 30.0  # longer audio is run through the model in windows of this length...
CONTEXT_S = 2.0  # ...each seeing this much audio on either side
_BUNDLES = {"en": "WAV2VEC2_ASR_BASE_960H", "mul": "MMS_FA"}


def _bundle(key: str):
    return getattr(torchaudio.pipelines, _BUNDLES[key])


def find_weights(model_dir: str | None = None, language: str = "en") -> Path | None:
    """Path of the cached checkpoint for ``language`` ("en" or "mul"), or None when not cached.

    Looks in ``model_dir``, ``model_dir/hub/checkpoints`` and torch hub's own
    cache (``$TORCH_HOME/hub/checkpoints``), where torchaudio would have put it.
    """
    name = Path(str(_bundle("en" if language == "en" else "mul")._path)).name  # noqa: SLF001
    dirs = []
    if model_dir:
        dirs += [Path(model_dir), Path(model_dir) / "hub" / "checkpoints", Path(model_dir) / "checkpoints"]
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


@dataclass
class WordFrames:
    """Frames of one word in the emission, with its CTC path posterior (0..1)."""

    start: int  # first frame
    end: int  # one past the last frame
    score: float
    units: list[tuple[int, int]]  # per token: [start, end) frames


def ctc_word_frames(
    emission: torch.Tensor, words: list[list[int]], *, blank: int = 0, separator: int | None = None
) -> list[WordFrames | None]:
    """Force-align token ids of ``words`` to a log-probability ``emission`` (frames x labels).

    ``separator`` (the ``|`` label of letter CTC models) goes between words.
    A word with no tokens gets ``None``: its place is decided by its neighbours.
    """
    targets: list[int] = []
    owner: list[int] = []  # word index of each target token, -1 for separators
    for i, ids in enumerate(words):
        if not ids:
            continue
        if separator is not None and targets:
            targets.append(separator)
            owner.append(-1)
        targets.extend(ids)
        owner.extend([i] * len(ids))
    result: list[WordFrames | None] = [None] * len(words)
    if not targets:
        return result
    tgt = torch.tensor([targets], dtype=torch.int32, device=emission.device)
    with warnings.catch_warnings():  # deprecated in torchaudio 2.9 but still the maintained CTC aligner
        warnings.simplefilter("ignore")
        path, scores = F.forced_align(emission.unsqueeze(0).float(), tgt, blank=blank)
    spans = F.merge_tokens(path[0], scores[0].exp(), blank=blank)
    if len(spans) != len(targets):  # pragma: no cover - forced_align emits every target once
        raise RuntimeError("CTC path lost tokens")
    for span, who in zip(spans, owner, strict=True):
        if who < 0:
            continue
        w = result[who]
        if w is None:
            result[who] = WordFrames(span.start, span.end, 0.0, [(span.start, span.end)])
        else:
            w.end = span.end
            w.units.append((span.start, span.end))
    # Word score: mean frame posterior along the path over the word's frames.
    probs = scores[0].exp()
    for w in result:
        if w is not None:
            w.score = float(probs[w.start : w.end].mean())
    return result


def romanize(word: str, language: str) -> str:
    if language.startswith("zh"):
        from pypinyin import lazy_pinyin

        return " ".join(lazy_pinyin(word))
    return unidecode(word)


class CtcAligner:
    name = "ctc"

    def __init__(
        self,
        *,
        device: str = "cpu",
        model_dir: str | None = None,
        multilingual: bool = False,
        model: torch.nn.Module | None = None,
        labels: tuple[str, ...] | None = None,
    ):
        """Load the cached checkpoint, or take an already built ``model`` with its ``labels``."""
        self.device = torch.device(device)
        self.multilingual = multilingual
        if model is None:
            key = "mul" if multilingual else "en"
            path = find_weights(model_dir, key)
            if path is None:
                raise FileNotFoundError(
                    f"{_BUNDLES[key]} weights are not in the model cache (model_dir={model_dir!r}, "
                    f"torch hub={torch.hub.get_dir()!r}); fetch them once into the volume, or use ALIGNER=sphinx"
                )
            bundle = _bundle(key)
            # The file is already in ``path.parent``, so torch.hub uses it and does not download.
            model = bundle.get_model(dl_kwargs={"model_dir": str(path.parent), "progress": False})
            labels = tuple(bundle.get_labels()) if not multilingual else tuple(bundle.get_dict())
        if labels is None:
            raise ValueError("labels are required with a custom model")
        self.model = model.to(self.device).eval()
        self.labels = labels
        self.index = {c: i for i, c in enumerate(labels)}
        self.blank = 0
        self.separator = self.index.get("|")
        self.upper = all(c.upper() == c for c in labels if c.isalpha())
        self._lock = threading.Lock()

    def token_ids(self, word: str, language: str = "en") -> list[int]:
        text = romanize(word, language) if self.multilingual else unidecode(word)
        text = text.upper() if self.upper else text.lower()
        return [self.index[c] for c in text if c in self.index and c not in ("|", "-", "*")]

    @torch.inference_mode()
    def emission(self, audio16k: np.ndarray) -> torch.Tensor:
        """Log-probabilities (frames x labels). Long audio goes through in windows with some
        context on each side, so memory stays flat (self-attention is quadratic in length)."""
        if len(audio16k) <= WINDOW_S * SAMPLE_RATE:
            return self._logprobs(audio16k)
        hop = FRAME_SAMPLES
        step = int(WINDOW_S * SAMPLE_RATE) // hop * hop
        ctx = int(CONTEXT_S * SAMPLE_RATE) // hop * hop
        parts = []
        for start in range(0, len(audio16k), step):
            if stopping.is_stopped():  # a window takes a second or so on a CPU; 30 minutes are many
                raise stopping.JobStopped("during alignment")
            lo = max(0, start - ctx)
            window = audio16k[lo : min(len(audio16k), start + step + ctx)]
            out = self._logprobs(window)
            first = (start - lo) // hop
            parts.append(out[first : first + step // hop])
        return torch.cat(parts)

    @torch.inference_mode()
    def _logprobs(self, audio16k: np.ndarray) -> torch.Tensor:
        wav = torch.from_numpy(np.ascontiguousarray(audio16k)).to(self.device).unsqueeze(0)
        with self._lock:
            logits, _ = self.model(wav)
        return torch.log_softmax(logits[0].float(), dim=-1)

    def align(self, audio: np.ndarray, sample_rate: int, text: str, *, language: str = "en") -> Alignment:
        t0 = time.perf_counter()
        audio, duration, tokens, spoken = backend_input(audio, sample_rate, text, language, SAMPLE_RATE)
        if not spoken or len(audio) < SAMPLE_RATE * 0.05:
            return EstimateAligner().align(audio, SAMPLE_RATE, text, language=language)
        emission = self.emission(audio)
        frame_s = len(audio) / SAMPLE_RATE / emission.shape[0]
        ids = [self.token_ids(w, language) for w in spoken]
        try:
            frames = ctc_word_frames(emission.cpu(), ids, blank=self.blank, separator=self.separator)
        except RuntimeError:  # too little audio for the text: it cannot say it
            return unalignable(audio, SAMPLE_RATE, text, language, duration, t0, backend=self.name)
        timings = words_to_timings(frames, frame_s)
        return build_alignment(text, tokens, timings, duration=duration, backend=self.name, estimated=False,
                               align_seconds=time.perf_counter() - t0)


def words_to_timings(frames: list[WordFrames | None], frame_s: float) -> list[WordTiming]:
    """Seconds per word; a word without tokens sits, zero-length, where the previous one ended."""
    out: list[WordTiming] = []
    cursor = 0.0
    for w in frames:
        if w is None:
            out.append(WordTiming(cursor, cursor, out[-1].confidence if out else 1.0))
            continue
        units = [(s * frame_s, e * frame_s) for s, e in w.units]
        out.append(WordTiming(w.start * frame_s, w.end * frame_s, w.score, units))
        cursor = w.end * frame_s
    return out
