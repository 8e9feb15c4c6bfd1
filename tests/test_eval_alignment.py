"""The accuracy command (scripts/bench/eval_alignment.py) on a subset of its corpus: ground truth from
espeak-ng word events, and the bound."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_corpus_is_big_and_varied(evalmod):
    assert len(evalmod.SENTENCES) >= 50
    assert len(evalmod.PARAGRAPH.split()) > 60
    assert sum(any(ch.isdigit() for ch in s) for s in evalmod.CORPUS) >= 10


def test_truth_comes_from_word_events_matched_by_text_position(evalmod):
    case = evalmod.make_case("In 1999, Dr. Smith paid 42 dollars.")
    tokens = ["In", "1999,", "Dr.", "Smith", "paid", "42", "dollars."]
    assert set(case.truth) <= set(range(len(tokens)))
    assert len(case.truth) >= 6
    starts = [case.truth[i] for i in sorted(case.truth)]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert case.truth[max(case.truth)] < len(case.audio) / case.sample_rate


@pytest.mark.slow
def test_sphinx_meets_the_accuracy_bound_on_a_subset(evalmod):
    from f5_worker.alignment.selection import load_aligner

    cases = [evalmod.make_case(t) for t in evalmod.SENTENCES[:20]]
    figures = evalmod.evaluate(load_aligner("sphinx"), cases)
    assert figures["words"] >= 150
    assert figures["mean_abs_ms"] <= 20.0
    assert figures["within_50ms"] >= 90.0
    # Every word with a true start is counted once, over all the audio (speed is scripts/bench/eval_alignment.py's own
    # measurement, not a test's).
    assert figures["words"] == sum(len(case.truth) for case in cases)
    assert figures["audio_seconds"] == pytest.approx(sum(len(c.audio) / c.sample_rate for c in cases), abs=0.005)


def test_figures_on_timings_off_by_known_amounts(evalmod):
    """True starts are set at chosen distances from what the aligner reports, so every figure is known
    without the formulas: errors of 0, +10, -30, -5 and +60 ms over five counted words."""
    from f5_worker.alignment.estimate import EstimateAligner
    from f5_worker.alignment.quality import align_audio

    aligner = EstimateAligner()
    rng = np.random.default_rng(0)
    cases = []
    # token index -> (reported start - true start) in ms; "charlie" has no true start and is not counted.
    for text, seconds, off_ms in [("Alpha bravo charlie delta.", 2.0, {0: 0, 1: 10, 3: -30}),
                                  ("Echo foxtrot.", 1.5, {0: -5, 1: 60})]:
        audio = rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32)
        reported = align_audio(aligner, audio, 16000, text).words
        truth = {i: reported[i].start - ms / 1000 for i, ms in off_ms.items()}
        cases.append(evalmod.Case(text, audio, 16000, truth))
    figures = evalmod.evaluate(aligner, cases)
    assert figures["words"] == 5 and figures["sentences"] == 2 and figures["backend"] == "estimate"
    assert figures["audio_seconds"] == 3.5
    assert figures["mean_abs_ms"] == pytest.approx(21.0, abs=0.01)  # (0 + 10 + 30 + 5 + 60) / 5
    assert figures["median_abs_ms"] == pytest.approx(10.0, abs=0.01)
    assert figures["mean_signed_ms"] == pytest.approx(7.0, abs=0.01)  # (0 + 10 - 30 - 5 + 60) / 5
    assert figures["within_20ms"] == 60.0 and figures["within_50ms"] == 80.0
    worst = [(w["word"], w["error_ms"]) for w in figures["worst"]]
    assert worst == [("foxtrot.", 60.0), ("delta.", 30.0), ("bravo", 10.0), ("Echo", 5.0), ("Alpha", 0.0)]


def test_json_output(evalmod, tmp_path, capsys):
    import torch

    out = tmp_path / "figures.json"
    threads = torch.get_num_threads()
    try:  # --threads 1 would pin this whole pytest process to one core
        assert evalmod.main(["--limit", "3", "--json", str(out), "--threads", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    (figures,) = json.loads(out.read_text())["results"]
    # The first three sentences only, aligned by sphinx, and the file holds the figures the command printed.
    assert figures["sentences"] == 3 and figures["backend"] == "sphinx"
    assert {w["sentence"] for w in figures["worst"]} <= {s[:40] for s in evalmod.SENTENCES[:3]}
    assert 20 <= figures["words"] <= sum(len(s.split()) for s in evalmod.SENTENCES[:3])
    printed = capsys.readouterr().out
    assert f"{figures['words']} words in 3 utterances" in printed
    assert f"mean abs start error {figures['mean_abs_ms']} ms (median {figures['median_abs_ms']} ms, " \
           f"p90 {figures['p90_abs_ms']} ms)" in printed
    assert f"within 20 ms: {figures['within_20ms']} %   within 50 ms: {figures['within_50ms']} %" in printed
    assert 0.0 < figures["mean_abs_ms"] <= 40.0 and figures["within_20ms"] <= figures["within_50ms"]


def test_other_languages_and_methods(evalmod, tmp_path):
    """French by dtw and estimate on two sentences: one result per method, sphinx (English only) left out,
    and dtw far closer to the truth than an estimate."""
    import torch

    out = tmp_path / "figures.json"
    threads = torch.get_num_threads()
    try:
        assert evalmod.main(["--language", "fr", "--method", "all", "--limit", "2", "--json", str(out),
                             "--threads", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    results = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"dtw", "estimate"}  # no ctc weights cached here
    assert all(r["language"] == "fr" and r["sentences"] == 2 and r["words"] >= 15 for r in results.values())
    assert results["dtw"]["mean_abs_ms"] <= results["dtw"]["p90_abs_ms"] * 2
    assert results["dtw"]["mean_abs_ms"] * 3 < results["estimate"]["mean_abs_ms"]


def test_held_out_sentences_are_not_the_development_ones(evalmod):
    for language in evalmod.LANGUAGES:
        held_out = set(evalmod.corpus(language, held_out=True))
        assert len(held_out) >= 12 and not held_out & set(evalmod.corpus(language))
        assert len(evalmod.corpus(language)) >= 30


def test_the_development_set_shows_each_failure_mode(evalmod):
    """Development sentences only, spoken in pieces after silences, each heard in every condition with the
    same truth (breaths added only in silence), and spoken whole; the first word after the leading silence, words after a pause and the
    rest are told apart, and the noise is as far below the speech as its condition says."""
    cases = evalmod.dev_cases("fr", limit=2)
    assert [c.condition for c in cases] == list(evalmod.DEV_CONDITIONS) * 2
    for c in cases:
        assert c.text in evalmod.corpus("fr") and c.text not in evalmod.corpus("fr", held_out=True)
    clean = [c for c in cases if c.condition == "clean"]
    for case in clean:
        ordered = sorted(case.truth)
        assert case.modes[ordered[0]] == "first" and "pause" in case.modes.values()
        assert evalmod.DEV_LEAD_S[0] <= case.truth[ordered[0]] <= evalmod.DEV_LEAD_S[1] + 0.1
        assert ordered[-1] in case.ends and case.ends[ordered[-1]] > case.truth[ordered[-1]]
        # A word after a pause starts after silence: nothing sounds in the PAUSE_BEFORE_S before it.
        sounding = evalmod._sounding_ms(case.audio, case.sample_rate)
        for i, mode in case.modes.items():
            ms = int(case.truth[i] * 1000)
            assert (mode == "other") == bool(sounding[ms - int(evalmod.PAUSE_BEFORE_S * 1000) : ms].any())
    breaths = []
    for case in cases:
        dry = next(c for c in clean if c.text == case.text)
        if case.condition == "whole":  # the same words, spoken as one utterance with no silence added
            assert case.truth.keys() == dry.truth.keys() and min(case.truth.values()) < 0.05
            assert case.modes[min(case.truth)] == "first" and case.modes[max(case.truth)] == "other"
            continue
        assert case.truth == dry.truth and len(case.audio) == len(dry.audio)
        if case.condition == "breath":  # breaths only where the dry speech is silent (where it has room)
            added = np.abs(case.audio.astype(np.float64) - dry.audio) > 1e-6
            breaths.append(added.sum() / case.sample_rate)
            sounding = evalmod._sounding_ms(dry.audio, dry.sample_rate)
            added_ms = np.flatnonzero(added) * 1000 // dry.sample_rate
            assert not sounding[added_ms].any()
        if case.condition.startswith("noise"):
            noise = case.audio.astype(np.float64) - dry.audio
            snr = 10 * np.log10(evalmod._speech_power(dry.audio, dry.sample_rate) / np.mean(noise**2))
            assert snr == pytest.approx(float(case.condition.removeprefix("noise")), abs=0.5)
    assert len(breaths) == 2 and max(breaths) >= 0.1


def test_figures_per_failure_mode(evalmod):
    """Every counted word falls in one mode, and the words before a pause get an end figure."""
    from f5_worker.alignment.estimate import EstimateAligner

    cases = [c for c in evalmod.dev_cases("es", limit=2) if c.condition == "clean"]
    figures = evalmod.evaluate(EstimateAligner(), cases)
    assert sum(f["words"] for f in figures["modes"].values()) == figures["words"]
    assert set(figures["modes"]) <= set(evalmod.MODES) and figures["modes"]["first"]["words"] == 2
    assert figures["ends"]["words"] == sum(len(c.ends) for c in cases)
    for f in [*figures["modes"].values(), figures["ends"]]:
        assert 0 <= f["within_20ms"] <= f["within_50ms"] <= 100 and f["max_abs_ms"] >= f["mean_abs_ms"]
