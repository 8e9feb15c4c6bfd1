"""Forced alignment: real speech, mismatch detection, the backends and the output invariants."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f5_worker.alignment import espeak, g2p
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.alignment.quality import align_audio, alignment_mismatch
from f5_worker.alignment.selection import AutoAligner, load_aligner
from f5_worker.audio import speech_region
from f5_worker.text.tokens import tokenize
from f5_worker.timed_text import Alignment

REF_TEXT = "Some call me nature, others call me mother nature."


@pytest.fixture(scope="module")
def sphinx():
    return load_aligner("sphinx")


@pytest.fixture(scope="module")
def ref_speech():
    path = importlib.resources.files("f5_tts").joinpath("infer/examples/basic/basic_ref_en.wav")
    audio, sr = sf.read(str(path), dtype="float32")
    return audio, sr


def check_invariants(result: Alignment, text: str, duration: float) -> None:
    tokens = tokenize(text)
    assert [w.text for w in result.words] == [t.text for t in tokens]
    assert [(w.char_start, w.char_end) for w in result.words] == [(t.char_start, t.char_end) for t in tokens]
    for w in result.words:
        assert text[w.char_start : w.char_end] == w.text
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    for span in result.words + result.chars:
        assert 0.0 <= span.start <= span.end <= duration + 1e-9
        assert 0.0 <= span.confidence <= 1.0
    chars = [c for c in result.chars]
    assert [c.char_start for c in chars] == [p for t in tokens for p in range(t.char_start, t.char_end)]
    assert [c.start for c in chars] == sorted(c.start for c in chars)
    assert 0.0 <= result.score <= 1.0
    assert all(0 <= i < len(result.words) for i in result.flagged_words)
    # The response form (rounded to ms) keeps the invariants too.
    dicts = [w.to_dict() for w in result.words]
    assert [d["start"] for d in dicts] == sorted(d["start"] for d in dicts)
    assert all(0.0 <= d["start"] <= d["end"] <= duration for d in dicts)


def test_reference_speech_aligns_in_order_inside_speech(sphinx, ref_speech):
    audio, sr = ref_speech
    duration = len(audio) / sr
    result = align_audio(sphinx, audio, sr, REF_TEXT)
    check_invariants(result, REF_TEXT, duration)
    assert result.backend == "sphinx" and not result.estimated
    lo, hi = speech_region(audio, sr)
    for w in result.words:
        assert lo - 0.05 <= w.start < w.end <= hi + 0.05
    # Words do not overlap and the long pause after "nature," is not inside a word.
    for a, b in zip(result.words, result.words[1:]):
        assert a.end <= b.start + 1e-9
    assert result.words[4].start - result.words[3].end > 0.5
    assert result.score > 0.9 and not result.flagged_words
    assert not alignment_mismatch(result)
    # Each word and character as plain JSON that keeps its text and place.
    sent = json.loads(json.dumps({"words": [w.to_dict() for w in result.words],
                                  "chars": [c.to_dict() for c in result.chars]}))
    assert [REF_TEXT[d["char_start"] : d["char_end"]] for d in sent["words"]] == REF_TEXT.split()
    assert [d["word"] for d in sent["words"]] == REF_TEXT.split()
    assert "".join(d["char"] for d in sent["chars"]) == REF_TEXT.replace(" ", "")
    assert set(result.words[0].to_dict()) == {"word", "start", "end", "confidence", "char_start", "char_end"}
    assert set(result.chars[0].to_dict()) == {"char", "start", "end", "confidence", "char_start", "char_end"}


def _noise_clip(sample_rate: int) -> np.ndarray:
    """3 s of swelling noise, like the tiny random TTS model's output: no words, yet a path fits."""
    rng = np.random.default_rng(0)
    n = sample_rate * 3
    swell = 0.2 + np.abs(np.sin(np.arange(n) / sample_rate * np.pi * 3))
    return (rng.normal(0, 0.3, n) * swell).astype(np.float32)


def _everything(result: Alignment):
    """All that a job returns from an alignment, unrounded."""
    return (
        [(w.start, w.end, w.confidence) for w in result.words],
        [(c.start, c.end, c.confidence) for c in result.chars],
        result.score, result.flagged_words, result.estimated, result.backend,
    )


def test_sphinx_results_do_not_depend_on_earlier_jobs(ref_speech):
    # pocketsphinx's noise-removal trackers outlive an utterance unless reset; a worker that
    # aligned loud noise, unknown words or other readings before must give a job the same timings
    # as a fresh one. Before the fix both jobs moved: a start by 10 ms (speech), 1 s (noise).
    from f5_worker.alignment.sphinx import SphinxAligner

    audio, sr = ref_speech
    jobs = [(audio, sr, REF_TEXT), (_noise_clip(sr), sr, "Hello there, how are you today?")]
    fresh = [_everything(SphinxAligner().align(*job)) for job in jobs]
    assert not fresh[0][4] and fresh[0][2] > 0.9
    assert not fresh[1][4] and 0.0 < fresh[1][2] < 0.5  # aligned (a path fits), but poorly

    used = SphinxAligner()
    loud = np.random.default_rng(1).normal(0, 0.5, sr * 2).astype(np.float32)
    other, other_sr, _ = espeak.synthesize("Zorblax met Dr. Smith in 1564.")  # added words, readings
    used.align(other, other_sr, "Zorblax met Dr. Smith in 1564.")
    for job, expected in zip(jobs, fresh, strict=True):
        used.align(loud, sr, "The cat sat.")
        assert _everything(used.align(*job)) == expected
        assert _everything(used.align(*job)) == expected


def test_words_a_decoder_learns_are_bounded_and_a_rebuild_changes_nothing(ref_speech):
    """A long-lived worker meets endless new words; each stayed in the decoders for good (~1 kB)."""
    from f5_worker.alignment.sphinx import SphinxAligner

    audio, sr = ref_speech
    text = "Zorblax quibbled: " + REF_TEXT
    expected = _everything(SphinxAligner().align(audio, sr, text))
    small = SphinxAligner(max_added_words=6)
    first_decoders = list(small._decoders)
    assert _everything(small.align(audio, sr, text)) == expected
    for n in range(4):  # jobs full of words no dictionary has
        small.align(audio[: sr * 2], sr, f"blorft{n} snarf{n} quuxle{n} wibbet{n}")
    assert all(added <= 6 for added in small._added)
    assert small._decoders[0] is not first_decoders[0]  # the decoder every job uses was rebuilt on the way
    assert _everything(small.align(audio, sr, text)) == expected


def test_audio_of_another_text_is_a_mismatch(sphinx, ref_speech):
    audio, sr = ref_speech
    result = align_audio(sphinx, audio, sr, "The quick brown fox jumps over the lazy dog.")
    check_invariants(result, "The quick brown fox jumps over the lazy dog.", len(audio) / sr)
    assert alignment_mismatch(result)
    assert result.flagged_words


def test_espeak_sentences_match_and_mismatch(sphinx):
    a_text = "Please call Stella and ask her to bring these things with her from the store."
    b_text = "Fourteen ducks swam slowly across the pond near the old mill."
    audio, sr, _ = espeak.synthesize(a_text)
    good = align_audio(sphinx, audio, sr, a_text)
    bad = align_audio(sphinx, audio, sr, b_text)
    assert not alignment_mismatch(good)
    assert alignment_mismatch(bad)
    assert bad.score < good.score


def test_substituted_word_is_flagged(sphinx):
    text = "Doctor Smith arrived at the hospital at seven in the morning."
    audio, sr, _ = espeak.synthesize(text)
    right = align_audio(sphinx, audio, sr, text).words[5].confidence
    result = align_audio(sphinx, audio, sr, text.replace("hospital", "station"))
    assert 5 in result.flagged_words
    # A word sharing more sounds scores lower too, but need not fall under the flag threshold
    # (0.35 for "elephant": about 1 in 4 substitutions goes unflagged, see docs/timings.md).
    assert align_audio(sphinx, audio, sr, text.replace("hospital", "elephant")).words[5].confidence < right
    assert result.words[5].confidence < right


def test_words_missing_from_dictionary_still_align(sphinx):
    text = "Zorblax quixotically flummoxed Nguyen's xylophonist."
    audio, sr, events = espeak.synthesize(text)
    result = align_audio(sphinx, audio, sr, text)
    assert result.backend == "sphinx" and not result.estimated
    check_invariants(result, text, len(audio) / sr)
    truth = {e.text_position: e.sample / sr for e in events}
    errors = [abs(w.start - truth[w.char_start]) for w in result.words if w.char_start in truth]
    assert len(errors) >= 4 and np.median(errors) < 0.06


def test_g2p_gives_arpabet_for_any_word():
    assert g2p.pronounce("zorblax").split()[0] == "Z"
    assert set(g2p.spell_to_arpabet("church")) <= g2p.ARPABET
    assert g2p.spell_to_arpabet("ʕʔ") == []
    assert g2p.pronounce("") == "AH"  # nothing pronounceable still yields a phone
    assert g2p.ipa_to_arpabet("tʃˈɜːtʃ") == ["CH", "ER", "CH"]


def test_load_aligner_kinds(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty model cache
    with pytest.raises(FileNotFoundError, match="not in the model cache"):
        load_aligner("ctc", model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown aligner"):
        load_aligner("whisper")
    auto = load_aligner("auto", model_dir=str(tmp_path))
    assert isinstance(auto, AutoAligner)
    assert auto.backend_for("en").name == "sphinx"
    assert auto.backend_for("fr").name == "dtw"
    assert auto.backend_for("fi").name == "estimate"


def test_estimate_is_flagged_and_never_a_mismatch(ref_speech, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ctc weights: Finnish (not measured) gets estimates
    audio, sr = ref_speech
    result = align_audio(load_aligner("auto"), audio, sr, "Hyvää huomenta kaikille.", language="fi")
    assert result.backend == "estimate" and result.estimated and not alignment_mismatch(result)
    assert all(w.confidence == 0.0 for w in result.words) and result.flagged_words == []
    check_invariants(result, "Hyvää huomenta kaikille.", len(audio) / sr)
    lo, hi = speech_region(audio, sr)
    assert lo <= result.words[0].start and result.words[-1].end <= hi + 1e-6


class _BrokenBackend:
    name = "broken"

    def align(self, audio, sample_rate, text, *, language="en"):
        raise RuntimeError("backend crashed")


def test_a_failing_backend_falls_back_to_flagged_estimates(ref_speech):
    audio, sr = ref_speech
    result = align_audio(_BrokenBackend(), audio, sr, REF_TEXT)
    assert result.estimated and result.backend == "estimate"
    check_invariants(result, REF_TEXT, len(audio) / sr)


# --- invariants for arbitrary text -------------------------------------------------------------

_WORDS = st.one_of(
    st.sampled_from(["hello", "world", "Dr.", "42", "3.5", "1999,", "$7", "—", "...", "?!", "don't", "naïve",
                     "北京", "Zorblax", "e-mail", "&", "%", "'", "2nd", "ÆØÅ", "🙂"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=8),
)
_TEXTS = st.lists(_WORDS, min_size=0, max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXTS, seconds=st.floats(0.0, 3.0))
def test_estimate_invariants_for_any_text(text, seconds):
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.1, int(16000 * seconds))).astype(np.float32)
    result = align_audio(EstimateAligner(), audio, 16000, text)
    check_invariants(result, text, seconds)
    assert result.estimated and result.score == 0.0


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXTS)
def test_sphinx_invariants_for_any_text(sphinx, text):
    # Speech of the text itself where espeak can say it, else unrelated real speech.
    audio, sr, _ = espeak.synthesize(text) if text.strip() else (np.zeros(8000, np.float32), 16000, [])
    if len(audio) < sr * 0.1:
        audio = np.zeros(sr, np.float32)
    duration = len(audio) / sr
    result = align_audio(sphinx, audio, sr, text)
    check_invariants(result, text, duration)


@pytest.mark.slow
def test_long_audio_is_aligned_in_pieces_with_the_same_accuracy(sphinx):
    from f5_worker.alignment import sphinx as sphinx_backend

    sentences = [
        "Long before the first railway crossed the plains, small towns grew wherever water and trade could be found.",
        "Farmers brought grain to the markets each autumn, and merchants from distant cities arrived with news.",
        "Some towns flourished almost overnight; others, bypassed by the line, slowly faded away.",
        "Historians still argue about who benefited most, but nobody doubts that the country was changed forever.",
    ]
    text = " ".join(sentences * 2)
    audio, sr, events = espeak.synthesize(text)
    assert len(audio) / sr > sphinx_backend.LONG_AUDIO_S
    result = align_audio(sphinx, audio, sr, text)
    check_invariants(result, text, len(audio) / sr)
    assert not result.estimated and not alignment_mismatch(result)
    truth = {e.text_position: e.sample / sr for e in events}
    errors = [abs(w.start - truth[w.char_start]) for w in result.words if w.char_start in truth]
    assert len(errors) > 100
    assert np.mean(errors) < 0.03 and np.mean(np.array(errors) < 0.05) > 0.9


def test_choose_readings_follows_what_was_said():
    from f5_worker.alignment.sphinx import choose_readings

    units = [[["in"]], [["fifteen", "sixty", "four"], ["one", "thousand", "five", "hundred", "sixty", "four"]], [["ok"]]]
    assert choose_readings(units, ["in", "fifteen", "sixty", "four", "ok"]) == [0, 0, 0]
    assert choose_readings(units, ["in", "one", "thousand", "five", "hundred", "sixty", "four", "ok"]) == [0, 1, 0]
    assert choose_readings(units, ["in", "sixty", "four", "ok"]) is None
    assert choose_readings([[["a"], ["a", "b"]], [["b", "c"], ["c"]]], ["a", "b", "c"]) in ([0, 0], [1, 1])


def test_the_reading_the_audio_has_is_aligned(sphinx):
    text = "William Shakespeare was born in 1564."
    audio, sr, events = espeak.synthesize(text)  # espeak says "one thousand five hundred sixty four"
    result = align_audio(sphinx, audio, sr, text)
    truth = {e.text_position: e.sample / sr for e in events}
    assert abs(result.words[5].start - truth[result.words[5].char_start]) < 0.03
    assert result.words[5].confidence > 0.5 and not alignment_mismatch(result)


def test_sphinx_estimates_other_languages_instead_of_calling_them_a_mismatch(sphinx):
    text = "L'été à Paris, c'est très beau."
    audio, sr, _ = espeak.synthesize(text, voice="fr")
    result = align_audio(sphinx, audio, sr, text, language="fr")
    assert result.backend == "estimate" and result.estimated and not alignment_mismatch(result)
    check_invariants(result, text, len(audio) / sr)
