"""The dtw aligner on espeak-ng speech in other languages, its search, and ``auto``'s choice by accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_alignment import check_invariants

from f5_worker.alignment import dtw, espeak
from f5_worker.alignment.dtw import DtwAligner, banded_dtw
from f5_worker.alignment.quality import align_audio, alignment_mismatch
from f5_worker.alignment.selection import ACCURACY, MEASURED, best_backend, load_aligner

# Bounds from scripts/bench/eval_alignment.py's figures (mean 5.6-11.5 ms, 94-99 % within 50 ms in
# these languages): a few times looser, so the draw of sentences does not decide, and far below what a
# straight, unwarped path gives (tested below).
MEAN_ERROR_BOUND_S = 0.040
WITHIN_50MS_BOUND = 0.80


@pytest.fixture(scope="module")
def cases(evalmod):
    """Four sentences each in French, German and Spanish, spoken in the test voice (not the reference's)."""
    return {lang: [evalmod.make_case(t, lang, **evalmod.TEST_VOICE) for t in evalmod.LANGUAGE_SENTENCES[lang][:4]]
            for lang in ("fr", "de", "es")}


def start_errors(aligner, cases) -> np.ndarray:
    errors = []
    for case in cases:
        result = align_audio(aligner, case.audio, case.sample_rate, case.text, language=case.language)
        assert result.backend == "dtw" and not result.estimated
        errors += [abs(result.words[i].start - true) for i, true in case.truth.items()]
    return np.array(errors)


@pytest.mark.parametrize("language", ["fr", "de", "es"])
def test_word_starts_within_the_measured_bound_in_another_voice(cases, language):
    errors = start_errors(DtwAligner(), cases[language])
    assert len(errors) >= 25
    assert errors.mean() < MEAN_ERROR_BOUND_S
    assert (errors < 0.050).mean() >= WITHIN_50MS_BOUND


def test_words_never_overlap(cases):
    """The path can step through the rendering alone, so one audio frame ends a word and starts the next:
    that frame is the next word's."""
    for language in ("fr", "de", "es"):
        for case in cases[language]:
            result = align_audio(DtwAligner(), case.audio, case.sample_rate, case.text, language=language)
            for a, b in zip(result.words, result.words[1:]):
                assert a.end <= b.start + 1e-9, (language, case.text, a, b)


def test_the_same_alignment_after_other_speech_gives_the_same_timings(cases, evalmod):
    """A warm worker says other texts between two requests; espeak-ng's rendering must not carry them over
    (with its flutter, German words moved by up to 160 ms)."""
    def timings(case):
        return [(w.start, w.end) for w in DtwAligner().align(case.audio, case.sample_rate, case.text,
                                                              language=case.language).words]

    for language in ("de", "fr"):
        case = cases[language][0]
        first = timings(case)
        for k, other in enumerate(evalmod.LANGUAGE_SENTENCES[language][1:4]):
            espeak.synthesize(other, voice=language, rate_wpm=130 + 40 * k)
            espeak.synthesize("Something else entirely.", voice="en-us+f2")
            assert timings(case) == first, (language, k)


def test_a_steady_voice_says_a_text_the_same_after_other_speech():
    text = "Der schnelle braune Fuchs springt über den faulen Hund."
    first, _, first_events = espeak.synthesize(text, voice="de", steady=True)
    espeak.synthesize("Bonjour tout le monde, comment allez-vous ?", voice="fr+f3", rate_wpm=130)
    espeak.synthesize(text, voice="de")
    again, _, again_events = espeak.synthesize(text, voice="de", steady=True)
    assert np.array_equal(first, again) and first_events == again_events
    with pytest.raises(espeak.NoSuchVoice):
        espeak.synthesize(text, voice="de+f3", steady=True)


def test_a_reversed_path_misses_the_bound(cases, monkeypatch):
    """The bound tells a right path from a wrong one."""
    search = dtw.banded_dtw

    def reversed_path(rows, cols, band, **costs):
        path_i, path_j, similarity = search(rows, cols, band, **costs)
        return path_i[::-1].copy(), path_j, similarity

    monkeypatch.setattr(dtw, "banded_dtw", reversed_path)
    errors = start_errors(DtwAligner(), cases["de"])
    assert errors.mean() > MEAN_ERROR_BOUND_S and (errors < 0.050).mean() < WITHIN_50MS_BOUND


def test_a_pause_the_rendering_lacks_is_warped_over(evalmod, monkeypatch):
    """Two sentences with a second of silence between them, said as one text: the rendering pauses
    far less, so only a warped path keeps the second sentence's words in place (a straight line
    from corner to corner misses the bound). The warping alone, without ``onsets``, which shortens the
    pause first."""
    first, second = (evalmod.make_case(t, "it", **evalmod.TEST_VOICE) for t in evalmod.LANGUAGE_SENTENCES["it"][:2])
    gap = np.zeros(first.sample_rate, np.float32)
    audio = np.concatenate([first.audio, gap, second.audio])
    offset = (len(first.audio) + len(gap)) / first.sample_rate
    n_first = len(first.text.split())
    truth = dict(first.truth) | {n_first + i: t + offset for i, t in second.truth.items()}
    joined = evalmod.Case(f"{first.text} {second.text}", audio, first.sample_rate, truth, "it")
    errors = start_errors(DtwAligner(onsets=False), [joined])
    assert errors.mean() < MEAN_ERROR_BOUND_S and (errors < 0.050).mean() >= WITHIN_50MS_BOUND

    def straight(rows, cols, band, **costs):
        n = max(len(rows), len(cols))
        i = np.round(np.linspace(0, len(rows) - 1, n)).astype(int)
        j = np.round(np.linspace(0, len(cols) - 1, n)).astype(int)
        return i, j, np.einsum("ij,ij->i", rows[i], cols[j])

    monkeypatch.setattr(dtw, "banded_dtw", straight)
    errors = start_errors(DtwAligner(onsets=False), [joined])
    assert errors.mean() > MEAN_ERROR_BOUND_S


@pytest.mark.parametrize("language", ["es", "de"])
def test_words_after_leading_silence_are_timed_from_the_start_of_the_audio(cases, evalmod, language):
    """The search runs on the audio with its leading silence cut, so its frames count from the cut: every
    other case starts speaking at once, where forgetting to add the cut back is off by nothing."""
    silence_s = 1.0
    shifted = []
    for case in cases[language][:2]:
        gap = np.zeros(int(silence_s * case.sample_rate), np.float32)
        truth = {i: t + silence_s for i, t in case.truth.items()}
        shifted.append(evalmod.Case(case.text, np.concatenate([gap, case.audio]), case.sample_rate, truth, language))
    errors = start_errors(DtwAligner(), shifted)
    assert errors.mean() < MEAN_ERROR_BOUND_S and (errors < 0.050).mean() >= WITHIN_50MS_BOUND, errors


@pytest.mark.parametrize("language", ["es", "de"])
def test_words_before_trailing_silence_keep_their_times(cases, evalmod, language):
    """espeak-ng's rendering is matched to the length of the speech, trailing silence cut: matched to the
    whole audio, it would be drawn out over the silence and every word after the first would come late."""
    silence_s = 6.0
    padded = []
    for case in cases[language][:2]:
        gap = np.zeros(int(silence_s * case.sample_rate), np.float32)
        padded.append(evalmod.Case(case.text, np.concatenate([case.audio, gap]), case.sample_rate, case.truth, language))
    errors = start_errors(DtwAligner(), padded)
    assert errors.mean() < MEAN_ERROR_BOUND_S and (errors < 0.050).mean() >= WITHIN_50MS_BOUND, errors


def full_dtw_cost(rows: np.ndarray, cols: np.ndarray) -> float:
    """The textbook recurrence over the whole matrix, for comparison."""
    cost = 1.0 - rows @ cols.T
    total = np.full((len(rows) + 1, len(cols) + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, len(rows) + 1):
        for j in range(1, len(cols) + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
    return float(total[-1, -1])


def unit_rows(draw_seed: int, n: int, dims: int = 4) -> np.ndarray:
    x = np.random.default_rng(draw_seed).normal(size=(n, dims))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 25), m=st.integers(1, 25), seed=st.integers(0, 2**16))
def test_banded_search_finds_the_cheapest_path_when_the_band_holds_it(n, m, seed):
    rows, cols = unit_rows(seed, n), unit_rows(seed + 1, m)
    path_i, path_j, similarity = banded_dtw(rows, cols, band=max(n, m))
    assert (path_i[0], path_j[0]) == (0, 0) and (path_i[-1], path_j[-1]) == (n - 1, m - 1)
    steps = set(zip(np.diff(path_i).tolist(), np.diff(path_j).tolist(), strict=True))
    assert steps <= {(1, 1), (1, 0), (0, 1)}
    assert float((1.0 - similarity).sum()) == pytest.approx(full_dtw_cost(rows, cols), abs=1e-9)


def test_a_narrow_band_keeps_the_path_near_the_diagonal():
    rows, cols = unit_rows(1, 200), unit_rows(2, 150)
    path_i, path_j, _ = banded_dtw(rows, cols, band=5)
    centres = dtw.band_centres(200, 150)
    assert np.all(np.abs(path_j - centres[path_i]) <= 5)


_WORDS = {
    "fr": ["le", "chat", "dort", "été", "très", "beau", "marché", "l'école", "42", "où", "garçon", "Noël"],
    "de": ["der", "Hund", "läuft", "über", "die", "Straße", "schön", "1989", "Bäcker", "groß", "Zug"],
    "es": ["el", "niño", "come", "pan", "mañana", "¿dónde?", "está", "corazón", "12", "árbol", "¡hola!"],
    "it": ["il", "gatto", "dorme", "perché", "città", "caffè", "dell'acqua", "7", "gelato", "più"],
    "pt": ["o", "pão", "está", "coração", "avó", "não", "comboio", "15", "irmã", "cães"],
}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), language=st.sampled_from(sorted(_WORDS)))
def test_invariants_on_random_texts_in_five_languages(data, language):
    from f5_worker.alignment import espeak

    words = data.draw(st.lists(st.sampled_from(_WORDS[language] + [",", "—", "."]), min_size=1, max_size=8))
    text = " ".join(words)
    audio, sr, _ = espeak.synthesize(text, voice=f"{dtw.espeak_voice(language)}+f3", rate_wpm=140, pitch=30)
    if len(audio) < sr // 10:
        audio = np.zeros(sr, np.float32)
    result = align_audio(DtwAligner(), audio, sr, text, language=language)
    check_invariants(result, text, len(audio) / sr)
    for a, b in zip(result.words, result.words[1:]):
        assert a.end <= b.start + 1e-9
    for word in result.words:  # characters lie within their word
        for char in result.chars:
            if word.char_start <= char.char_start < word.char_end:
                assert word.start <= char.start <= char.end <= word.end + 1e-9


def test_its_score_never_calls_a_mismatch_but_silence_does(cases):
    case, other = cases["fr"][0], cases["fr"][1]
    result = align_audio(DtwAligner(), case.audio, case.sample_rate, other.text, language="fr")
    assert not result.score_is_evidence and result.flagged_words == [] and not alignment_mismatch(result)
    silent = align_audio(DtwAligner(), np.zeros(16000, np.float32), 16000, case.text, language="fr")
    assert silent.estimated and silent.backend == "dtw" and alignment_mismatch(silent)


def test_auto_picks_by_the_accuracy_table(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no CTC weights (English with them cached:
    auto = load_aligner("auto")  # tests/test_alignment_ctc.py, where they are written anyway)
    assert auto.backend_for("en").name == "sphinx"
    assert auto.backend_for("en-GB").name == "sphinx"
    for language in ("fr", "de", "es", "it", "pt", "pt-BR"):
        assert auto.backend_for(language).name == "dtw"
    assert auto.backend_for("fi").name == "estimate"
    result = align_audio(auto, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000,
                         "Hyvää huomenta.", language="fi")
    assert result.estimated and result.backend == "estimate"


def test_the_table_ranks_measurements_before_published_figures():
    everything = {"sphinx", "dtw", "ctc-multilingual"}
    assert best_backend("en", everything).backend == "sphinx"
    assert best_backend("fr", everything).backend == "dtw"
    assert best_backend("ja", everything).backend == "ctc-multilingual"
    assert best_backend("ja", {"sphinx", "dtw"}) is None
    assert best_backend("fr", {"sphinx", "ctc-multilingual"}).backend == "ctc-multilingual"
    # Every figure says where it comes from; measured ones name the command that reproduces them.
    assert all(a.mean_error_ms > 0 and a.source for a in ACCURACY)
    assert all("eval_alignment.py" in a.source for a in ACCURACY if a.basis.startswith(MEASURED))


def test_a_regional_tag_falls_back_to_its_language_and_an_unknown_one_to_estimates():
    from f5_worker.alignment import espeak

    text = "Le chat dort sur le canapé."
    audio, sr, _ = espeak.synthesize(text, voice="fr+f3", rate_wpm=140, pitch=30)
    regional = align_audio(DtwAligner(), audio, sr, text, language="fr-CA")  # espeak-ng has no fr-ca voice
    assert regional.backend == "dtw" and not regional.estimated
    unknown = align_audio(DtwAligner(), audio, sr, text, language="xx")
    assert unknown.backend == "estimate" and unknown.estimated and not alignment_mismatch(unknown)
    check_invariants(unknown, text, len(audio) / sr)


@pytest.mark.parametrize("frames", [100, 6_000, 39_000, 180_000])  # 1 s, 1 min, 6.5 min, 30 min (the align maximum)
def test_the_search_stays_within_its_memory_bound(frames):
    band = dtw.band_frames(frames, frames)
    assert band >= 1 and frames * (2 * band + 1) <= dtw.MAX_SEARCH_BYTES + frames


def test_the_search_holds_one_byte_per_cell_of_its_band():
    """The bound above is arithmetic on the band; it holds only while each cell's step takes one byte, as
    the search allocates it (int64 steps would hold 8 times as much: 1 GB for 30 minutes)."""
    import tracemalloc

    n, m = 2000, 1800  # 20 s of audio against an 18 s rendering, in the aligner's 12 coefficients
    rows, cols = unit_rows(1, n, dims=12), unit_rows(2, m, dims=12)
    band = dtw.band_frames(n, m)
    tracemalloc.start()  # numpy's arrays are traced
    try:
        banded_dtw(rows, cols, band)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cells = n * (2 * band + 1)
    features = (n + m) * 12 * 8  # one float64 copy of both sides' features
    assert peak <= cells + 4 * features, (peak, cells, features)


def test_tokens_espeak_gave_no_word_event_share_the_time_between_their_neighbours():
    """espeak-ng joins some words to a neighbour and reports one event for both: the tokens between two
    events are spread evenly between them, each after the one before, none on an event's time."""
    from f5_worker.text.tokens import tokenize

    text = "one two three four"
    tokens = tokenize(text, "en")
    ref_audio = np.full(2 * dtw.SAMPLE_RATE, 0.1, dtype=np.float32)  # sound throughout: ends at the next start
    spans = dtw.rendering_spans(tokens, {text.index("one"): 0.0, text.index("four"): 1.5},
                                dtw.sounding_frames(ref_audio), len(ref_audio) / dtw.SAMPLE_RATE)
    assert [round(start, 6) for start, _ in spans] == [0.0, 0.5, 1.0, 1.5]
    assert [round(end, 6) for _, end in spans[:3]] == [0.5, 1.0, 1.5]
