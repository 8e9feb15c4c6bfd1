"""What each sampling run of a script speaks (synthesis/runs.py): short parts joined with their neighbours of one
voice and cut back into their own words, runs sampled in calls of a bounded size, and re-sampled in rounds
by the quality gate."""

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, wav_base64
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.alignment.quality import GatedResult
from f5_worker.config import Settings
from f5_worker.schema import parse_job
from f5_worker.synthesis import runs as runs_module
from f5_worker.synthesis.joining import join_script
from f5_worker.synthesis.runs import sampled_texts, split_sampled
from f5_worker.synthesis.script import script_of, spoken_text
from f5_worker.text.markup import Pause, PauseRules
from f5_worker.tts.chunking import too_short
from f5_worker.tts.reference import prepare_reference
from f5_worker.tts.sampler import SynthesisResult

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


def test_a_scripts_parts_are_sampled_in_one_call_per_round_of_the_quality_gate(worker, monkeypatch):
    """Three parts, two voices: one engine call holds them all; the gate re-samples the parts that fail
    (the tiny model speaks noise: all of them) in one more call."""
    queued = []
    monkeypatch.setattr(worker.engine, "on_queued", queued.append)
    text = "One part here. [pause:0.3s] [voice:default] Another part. [voice:default] A third one."
    out = worker.handle({"text": text, "nfe_step": 4, "max_retries": 1, "seed": 8})
    assert "error" not in out, out
    assert [len(r.texts) for r in queued] == [3, 3]
    assert len({id(r) for q in queued for r in q.chunk_refs}) == 1  # the same voice: one prepared reference
    assert out["quality"]["retries"] == 3 and out["timing"]["retries_ms"] > 0
    again = worker.handle({"text": text, "nfe_step": 4, "max_retries": 1, "seed": 8})
    assert again["audio_base64"] == out["audio_base64"]  # a script with a seed is reproducible as a whole


def test_short_segments_of_one_voice_last_as_long_as_the_same_words_as_one_text(worker):
    """Each part under 10 bytes was sampled alone at upstream's speed 0.3: "Yes.", "No.", "Okay.", "Sure." as
    segments lasted 5.42 s and as one text 1.92 s. Parts of one voice with no pause between are sampled
    together, as a stream's first piece grows with the words after it, and cut back into their parts."""
    texts = ["Hi.", "Go on, then.", "Ok.", "Fine."]
    plain = run(worker, text=" ".join(texts), seed=4)
    script = run(worker, segments=[{"text": t} for t in texts], seed=4, char_timings=True)
    assert "error" not in script, script
    assert script["duration"] == pytest.approx(plain["duration"], abs=0.05)
    words = script["words"]
    assert [(w["word"], w["segment"]) for w in words] == [("Hi.", 0), ("Go", 1), ("on,", 1), ("then.", 1),
                                                          ("Ok.", 2), ("Fine.", 3)]
    for span in words + script["chars"]:
        key = "word" if "word" in span else "char"
        assert span[key] == texts[span["segment"]][span["char_start"]:span["char_end"]]
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert words[-1]["end"] <= script["duration"]
    tagged = run(worker, text="Hi. [voice:default] Go on, then. [voice:default] Ok. [voice:default] Fine.", seed=4)
    assert tagged["duration"] == pytest.approx(plain["duration"], abs=0.05)
    untimed = run(worker, segments=[{"text": t} for t in texts], seed=4, word_timings=False, caption_formats=[])
    assert untimed["duration"] == script["duration"] and "words" not in untimed


def test_a_short_part_joins_only_its_own_voice_with_no_pause_between(worker, monkeypatch):
    """What each sampling call speaks: a pause of a whole millisecond or more, another voice or another speed
    keeps parts apart; ``<break strength="none"/>`` (no silence) does not."""
    queued = []
    monkeypatch.setattr(worker.engine, "on_queued", queued.append)
    clip = wav_base64(*__import__("soundfile").read(DEFAULT_VOICE_WAV, dtype="float32"))

    def said(**job) -> list[str]:
        queued.clear()
        out = run(worker, seed=1, word_timings=False, caption_formats=[], **job)
        assert "error" not in out, out
        return ["".join(t).removeprefix(DEFAULT_VOICE_TEXT + " ") for r in queued for t in r.texts]

    assert said(text="Yes. <break strength='none'/> No. [pause:1ms] Okay.") == ["Yes. No.", "Okay."]
    assert said(segments=[{"text": "Yes."}, {"text": "No.", "speed": 1.2}, {"text": "Okay."}]) == [
        "Yes.", "No.", "Okay."]
    assert said(segments=[{"text": "Yes."}, {"ref_audio_base64": clip, "ref_text": DEFAULT_VOICE_TEXT, "text": "No."},
                          {"text": "A longer line of text."}, {"text": "Sure."}]) == [
        "Yes.", "No.", "A longer line of text. Sure."]


def test_a_scripts_parts_are_sampled_in_calls_of_a_bounded_size(worker, monkeypatch):
    """All of a script's parts were one engine call: 454 parts took 4 GB on the CPU. Calls hold at most
    ``MAX_RUNS_PER_CALL`` parts, and the result is the same whole."""

    queued = []
    monkeypatch.setattr(worker.engine, "on_queued", queued.append)
    count = 35
    text = " ".join(f"Line {n} of the script. [pause:20ms]" for n in range(count))
    out = run(worker, text=text, seed=2, caption_formats=[])
    assert "error" not in out, out
    calls = [len(r.texts) for r in queued]
    assert sum(calls) == count and len(calls) > 1, calls
    assert calls == [runs_module.MAX_RUNS_PER_CALL, count - runs_module.MAX_RUNS_PER_CALL]
    assert len(out["words"]) == 5 * count and out["chunks"] == count


_SHORT_OR_LONG = st.sampled_from(["Yes.", "No.", "Ok", "Hi there.", "A longer line, said in full.", "$5", "7",
                                  "[pause:0s] Yes.", "No. [pause:300ms]", "Go. <break strength='none'/> on."])


@given(st.lists(_SHORT_OR_LONG, min_size=1, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
@example(["Yes.", "No.", "Ok", "Hi there."], [False] * 8)
@example(["A longer line, said in full.", "Yes.", "No. [pause:300ms]", "Ok"], [False, False, True] + [False] * 5)
def test_short_parts_join_their_neighbours_of_one_voice_and_are_cut_back_into_their_own_words(texts, faster):
    """Runs (``sampled_texts``) take the parts in order; a run of several parts has no pause between them, one
    voice and speed, and each part joined it because the run or the part was short; two runs that could have
    joined are both long enough. Cut back (``split_sampled``), each part has its own words at their offsets
    in its own segment's text, and the audio is all there, in order."""

    rate = 24000
    ref = prepare_reference(np.full(rate, 0.1, np.float32), rate, "Reference words.")
    request = parse_job({"segments": [{"text": t, "speed": 1.25 if fast else None} for t, fast in zip(texts, faster)]})
    script = script_of(request, PauseRules.of(Settings()), 50)
    parts = [i for i in script if not isinstance(i, Pause)]
    parts = [dataclasses.replace(part, ref=ref) for part in parts]  # the voice loaded, as the service does
    spoken = [spoken_text(p.written, "en", True) for p in parts]
    runs = sampled_texts(script, parts, spoken)
    assert [i for r in runs for i in r.members] == list(range(len(parts)))
    gap_after = {}  # part index -> whether a pause of a millisecond or more follows it before the next part
    n = -1
    for item in script:
        if isinstance(item, Pause):
            if n >= 0 and round(item.seconds * 1000):
                gap_after[n] = True
        else:
            n += 1
    for r in runs:
        assert r.text == " ".join(spoken[i].spoken for i in r.members)
        assert all(r.text[s:].startswith(spoken[i].spoken) for s, i in zip(r.starts, r.members))
        for a, b in zip(r.members, r.members[1:]):
            assert not gap_after.get(a) and parts[a].speed == parts[b].speed
            assert too_short(r.text[:r.starts[r.members.index(b)] - 1]) or too_short(spoken[b].spoken)
    for before, after in zip(runs, runs[1:]):
        last, first = before.members[-1], after.members[0]
        if not gap_after.get(last) and parts[last].speed == parts[first].speed:
            assert not too_short(before.text) and not too_short(spoken[first].spoken)

    rng, per_part = np.random.default_rng(0), []
    for r in runs:
        wave = (rng.standard_normal(rate // 4 * len(r.members)) * 0.1).astype(np.float32)
        found = EstimateAligner().align(wave, rate, r.text)
        outcome = (SynthesisResult(wave, rate, [r.text], {}), GatedResult(wave, rate, found, 0, 1))
        cut = split_sampled(r, outcome, spoken, align=None)
        assert sum(len(res.wave) for res, _ in cut) == len(wave)
        assert np.array_equal(np.concatenate([res.wave for res, _ in cut]), wave)
        assert [g.retries for _, g in cut] == [1] + [0] * (len(cut) - 1)  # a run's retries counted once
        per_part += cut
    pauses = {id(i): round(i.seconds * rate) for i in script if isinstance(i, Pause)}
    joined = join_script(script, parts, spoken, per_part, pauses, rate, True)
    assert len(joined.alignment.words) == sum(len(p.written.split()) for p in parts)
    for w in joined.alignment.words:
        assert w.text == texts[w.segment][w.char_start:w.char_end]
    for w in joined.normalized.words:
        assert w.text == joined.normalized_text[w.char_start:w.char_end]
    times = [(w.start, w.end) for w in joined.alignment.words]
    assert times == sorted(times) and all(s <= e <= len(joined.wave) / rate for s, e in times)
