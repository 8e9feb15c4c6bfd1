"""CTC backend: decoding and word grouping on emissions with a known best path, and a tiny wav2vec2 end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchaudio.models import wav2vec2_model

from f5_worker.alignment.ctc import CtcAligner, ctc_word_frames, find_weights, words_to_timings
from f5_worker.alignment.quality import alignment_mismatch
from f5_worker.text.tokens import tokenize

LABELS = ("-", "|", "A", "B", "C")  # blank, word separator, letters


def emission_for(path: list[int], n_labels: int = len(LABELS), peak: float = 8.0) -> torch.Tensor:
    """Log-probabilities whose best path is exactly ``path`` (one label per frame)."""
    logits = torch.zeros(len(path), n_labels)
    logits[torch.arange(len(path)), torch.tensor(path)] = peak
    return torch.log_softmax(logits, dim=-1)


def test_word_frames_follow_the_known_best_path():
    _, sep, a, b, c = range(5)
    #        0  1  2  3  4  5  6    7  8  9  10 11
    path = [0, 0, a, a, b, 0, sep, c, c, 0, 0, 0]
    frames = ctc_word_frames(emission_for(path), [[a, b], [c]], blank=0, separator=sep)
    assert [(w.start, w.end) for w in frames] == [(2, 5), (7, 9)]
    assert frames[0].units == [(2, 4), (4, 5)]
    assert all(w.score > 0.99 for w in frames)


def test_repeated_letters_need_a_blank_between_them():
    _, _, a, b, _ = range(5)
    path = [a, 0, a, b, b, 0]
    (word,) = ctc_word_frames(emission_for(path), [[a, a, b]], blank=0)
    assert word.units == [(0, 1), (2, 3), (3, 5)]


def test_word_without_tokens_sits_at_the_previous_end():
    _, sep, a, b, c = range(5)
    path = [a, 0, sep, c, 0]
    frames = ctc_word_frames(emission_for(path), [[a], [], [c]], blank=0, separator=sep)
    assert frames[1] is None
    timings = words_to_timings(frames, 0.02)
    assert timings[1].start == timings[1].end == pytest.approx(0.02)
    assert timings[2].start == pytest.approx(0.06)


def test_uncertain_frames_lower_the_word_score():
    _, _, a, b, _ = range(5)
    clear = ctc_word_frames(emission_for([a, b, 0], peak=8.0), [[a, b]])[0]
    vague = ctc_word_frames(emission_for([a, b, 0], peak=0.5), [[a, b]])[0]
    assert vague.score < 0.5 < clear.score


def test_text_longer_than_the_audio_cannot_align():
    with pytest.raises(RuntimeError):
        ctc_word_frames(emission_for([0, 2]), [[2, 3, 4, 2, 3, 4]])


def tiny_wav2vec2(n_labels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    conv = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]
    return wav2vec2_model("group_norm", conv, False, 32, 0.0, 16, 4, 2, 2, 0.0, 64, 0.0, 0.0, False, 0.0, n_labels)


def test_tiny_wav2vec2_end_to_end_structure():
    labels = ("-", "|") + tuple("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    aligner = CtcAligner(model=tiny_wav2vec2(len(labels)), labels=labels)
    text = "Hello, world — 42 times! ¿Qué tal?"
    audio = np.random.default_rng(1).normal(0, 0.1, 24000 * 3).astype(np.float32)
    result = aligner.align(audio, 24000, text)
    assert result.backend == "ctc" and not result.estimated
    assert [w.text for w in result.words] == [t.text for t in tokenize(text)]
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= 3.0 for w in result.words + result.chars)
    assert len(result.chars) == sum(len(w.text) for w in result.words)
    # Random weights: nothing is recognised, so the gate must call it a mismatch.
    assert alignment_mismatch(result)


def test_tiny_wav2vec2_too_short_audio_is_a_mismatch_not_an_error():
    labels = ("-", "|") + tuple("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    aligner = CtcAligner(model=tiny_wav2vec2(len(labels)), labels=labels)
    audio = np.zeros(1600, np.float32)  # 0.1 s for a long sentence
    text = "This sentence is far too long for a tenth of a second of audio."
    result = aligner.align(audio, 16000, text)
    assert alignment_mismatch(result)
    assert [w.text for w in result.words] == text.split()


def test_weights_are_found_only_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_weights(str(tmp_path), "en") is None
    ckpt = tmp_path / "hub" / "checkpoints" / "wav2vec2_fairseq_base_ls960_asr_ls960.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert find_weights(str(tmp_path), "en") == ckpt
    assert find_weights(str(tmp_path), "mul") is None


@pytest.mark.slow
def test_long_audio_emission_is_windowed_with_the_same_frame_grid():
    labels = ("-", "|") + tuple("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    aligner = CtcAligner(model=tiny_wav2vec2(len(labels)), labels=labels)
    audio = np.random.default_rng(2).normal(0, 0.1, 16000 * 70).astype(np.float32)
    whole = aligner._logprobs(audio)
    windowed = aligner.emission(audio)
    assert abs(windowed.shape[0] - whole.shape[0]) <= 2
    assert windowed.shape[1] == len(labels)
    # Same frame grid: windowed frames match the whole-audio frames at the same index far more
    # closely than the neighbouring ones (attention sees less context, so not exactly).
    n = min(len(whole), len(windowed)) - 1
    same = (whole[:n] - windowed[:n]).abs().mean()
    shifted = (whole[1 : n + 1] - windowed[:n]).abs().mean()
    assert same < shifted / 10
    text = " ".join(["hello world"] * 60)
    result = aligner.align(audio, 16000, text)
    assert len(result.words) == 120 and all(0 <= w.start <= w.end <= 70 for w in result.words)


def test_random_checkpoint_in_the_real_format_loads_through_the_production_path(tmp_path, monkeypatch):
    """scripts/bench/bench.py --random-weights: ``ALIGNER=ctc`` finds it and aligns with it; ``auto`` keeps
    English on sphinx even with the weights cached, as in the image (nothing here measures English ctc)."""
    from f5_worker.alignment.selection import load_aligner
    from f5_worker.tts.tiny_models import ensure_random_ctc

    path = ensure_random_ctc(tmp_path / "torch")
    assert ensure_random_ctc(tmp_path / "torch") == path  # written once
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_weights(None, "en") == path
    assert load_aligner("auto").backend_for("en").name == "sphinx"
    aligner = load_aligner("ctc")  # torchaudio's bundle.get_model reads the file, strictly
    assert isinstance(aligner, CtcAligner) and len(aligner.labels) == 29
    audio = np.random.default_rng(3).normal(0, 0.1, 16000 * 2).astype(np.float32)
    text = "Random weights, real compute."
    result = aligner.align(audio, 16000, text)
    assert result.backend == "ctc" and [w.text for w in result.words] == [t.text for t in tokenize(text)]
