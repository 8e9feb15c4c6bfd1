"""The accuracy script on a subset of its corpus: ground truth from espeak-ng word events, and the bound."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_alignment.py"


@pytest.fixture(scope="module")
def evalmod():
    spec = importlib.util.spec_from_file_location("eval_alignment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_alignment"] = module
    spec.loader.exec_module(module)
    return module


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
def test_sphinx_meets_the_accuracy_bound_on_a_subset(evalmod, tmp_path):
    from f5_worker.alignment.selection import load_aligner

    cases = [evalmod.make_case(t) for t in evalmod.SENTENCES[:20]]
    figures = evalmod.evaluate(load_aligner("sphinx"), cases)
    assert figures["words"] >= 150
    assert figures["mean_abs_ms"] <= 20.0
    assert figures["within_50ms"] >= 90.0
    # Speed guard only: the 0.05 target is measured by the script (0.036 here); inside a busy test run
    # even the aligning thread's CPU time swells by a third when other processes share the cores.
    assert figures["align_cpu_rtf"] <= 0.08


def test_json_output(evalmod, tmp_path):
    import torch

    out = tmp_path / "figures.json"
    threads = torch.get_num_threads()
    try:  # --threads 1 would pin this whole pytest process to one core
        assert evalmod.main(["--limit", "3", "--json", str(out), "--threads", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    figures = json.loads(out.read_text())
    for key in ("mean_abs_ms", "within_20ms", "within_50ms", "align_rtf"):
        assert isinstance(figures[key], float | int)
