"""A script's parts joined into one result (synthesis/joining.py): the audio end to end with its pauses, every
word and character placed in the whole and mapped back to the text as written (an estimate aligner: pure
mapping, no model), and times never rounded past the end of the audio."""

import re

import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st
from test_markup import _TAGS, _WORDS

from f5_worker import audio
from f5_worker.alignment.estimate import EstimateAligner
from f5_worker.alignment.quality import GatedResult
from f5_worker.config import Settings
from f5_worker.schema import parse_job
from f5_worker.synthesis.joining import PART_FADE_S, join_script, shifted
from f5_worker.synthesis.script import has_voices, script_of, spoken_text
from f5_worker.text.markup import Pause, PauseRules
from f5_worker.timed_text import TimedSpan
from f5_worker.tts.sampler import SynthesisResult

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


@given(st.lists(st.one_of(_WORDS, _TAGS), min_size=1, max_size=12), st.booleans())
@example(["Hello", "[pause:1s]", "$42.50", "[voice:default]", "3rd"], True)
def test_every_word_is_the_text_as_written_at_its_offsets(tokens, as_segments):

    text = " ".join(tokens)
    assume(any(ch.isalnum() for ch in re.sub(r"\[[^\]]*\]|<[^>]*>", "", text)))  # tags alone: refused, not timed
    if as_segments:  # the same text as two segments: offsets index each segment's own text
        cut = len(tokens) // 2
        texts = [" ".join(tokens[:cut]), " ".join(tokens[cut:])]
        texts = [t.replace("[voice:default]", "") for t in texts]
        texts = [t for t in texts if any(ch.isalnum() for ch in re.sub(r"\[[^\]]*\]|<[^>]*>", "", t))]
        assert texts  # every word outside the tags is in one half or the other
        request = parse_job({"segments": [{"text": t} for t in texts]})
    else:
        texts = [text]
        request = parse_job({"text": text})
    script = script_of(request, PauseRules.of(Settings()), 50)
    parts = [i for i in script if not isinstance(i, Pause)]

    spoken = [spoken_text(p.written, "en", True) for p in parts]
    rate, rng = 24000, np.random.default_rng(0)
    outcomes = []
    for p in parts:
        wave = (rng.standard_normal(rate // 2) * 0.1).astype(np.float32)
        alignment = EstimateAligner().align(wave, rate, spoken[len(outcomes)].spoken)
        outcomes.append((SynthesisResult(wave, rate, [p.written], {}), GatedResult(wave, rate, alignment, 0, 0)))
    assert any(s.spoken != s.written for s in spoken) or not any("$42.50" in p.written for p in parts)
    pauses = {id(i): round(i.seconds * rate) for i in script if isinstance(i, Pause)}
    joined = join_script(script, parts, spoken, outcomes, pauses, rate, has_voices(request, parts))
    assert len(joined.wave) == sum(len(o[0].wave) for o in outcomes) + sum(pauses.values())
    assert len(joined.alignment.words) == sum(len(p.written.split()) for p in parts)
    for w in joined.alignment.words:
        assert w.text == (texts[w.segment] if as_segments else text)[w.char_start:w.char_end]
        assert w.voice == ("default" if as_segments else w.voice)  # segments without a voice: the request's
    for w in joined.normalized.words:
        assert w.text == joined.normalized_text[w.char_start:w.char_end]
    times = [w.start for w in joined.alignment.words]
    assert times == sorted(times) and all(w.end <= len(joined.wave) / rate + 1e-3 for w in joined.alignment.words)


def test_a_pause_is_its_exact_samples_of_silence_and_the_next_part_is_timed_from_their_end():
    """Where the pause lies, without an aligner landing in noise: the silence is exactly the pause's samples,
    right after the first part, and every word of the next part is timed from the silence's end (its own
    time in its part plus that offset, to the millisecond)."""

    rate = 24000
    script = script_of(parse_job({"text": "Before the pause. [pause:1.5s] After it."}), PauseRules.of(Settings()), 50)
    parts = [i for i in script if not isinstance(i, Pause)]
    spoken = [spoken_text(p.written, "en", True) for p in parts]
    rng = np.random.default_rng(0)
    waves = [(rng.uniform(0.1, 0.5, n) * rng.choice([-1, 1], n)).astype(np.float32) for n in (30_000, 20_003)]
    alignments = [EstimateAligner().align(w, rate, s.spoken) for w, s in zip(waves, spoken)]
    outcomes = [(SynthesisResult(w, rate, [p.written], {}), GatedResult(w, rate, a, 0, 0))
                for w, p, a in zip(waves, parts, alignments)]
    pause = 36_000  # 1.5 s
    joined = join_script(script, parts, spoken, outcomes, {id(script[1]): pause}, rate)

    first = len(waves[0])
    assert np.array_equal(joined.wave[:first], audio.fade_edges(waves[0], rate, PART_FADE_S))
    assert np.array_equal(joined.wave[first:first + pause], np.zeros(pause, np.float32))
    assert np.array_equal(joined.wave[first + pause:], audio.fade_edges(waves[1], rate, PART_FADE_S))
    offset = (first + pause) / rate
    after = [w for w in joined.alignment.words if w.char_start >= parts[1].char_offset]
    assert [w.text for w in after] == ["After", "it."]
    assert [(w.start, w.end) for w in after] == [
        (round(offset + w.start, 3), round(offset + w.end, 3)) for w in alignments[1].words]
    assert after[0].start >= offset > joined.alignment.words[2].end


def test_no_word_or_character_is_rounded_past_the_end_of_the_audio(worker):
    """Times are placed in the whole to the millisecond; a last word ending less than half a millisecond
    before the end of the audio (10.6987 s here, on the tiny model) must not end at 10.699."""

    word = TimedSpan("end.", 0.5, 0.69866, 1.0, 0, 4)
    assert (shifted(word, 1.0, 0, 1.69866).start, shifted(word, 1.0, 0, 1.69866).end) == (1.5, 1.698)
    out = run(worker, text="Às 2:00, 22:00:00 e 1:00; cartão 4111-1111-1111-1111.", language="pt", seed=1,
              char_timings=True)
    assert "error" not in out, out
    assert all(0 <= s["start"] <= s["end"] <= out["duration"] for s in out["words"] + out["chars"]), out["duration"]


def test_normalized_text_joins_parts_with_one_space_as_a_stream_does():
    """A part whose spoken text starts with what was left out (a markdown heading's "#", an emoji) starts with
    a space: joined with a space, the unstreamed ``normalized_text`` had two ("Intro.  Title here") where the
    streamed one, which trims each piece, had one. Each spoken word still indexes it."""

    rate = 24000
    script = script_of(parse_job({"text": "Intro.\n\n# Title here\n\n👍 Done 👍"}), PauseRules.of(Settings()), 50)
    parts = [i for i in script if not isinstance(i, Pause)]
    spoken = [spoken_text(p.written, "en", True) for p in parts]
    assert [s.spoken for s in spoken] == ["Intro.", " Title here", " Done "]
    wave = np.full(rate // 2, 0.1, np.float32)
    outcomes = [(SynthesisResult(wave, rate, [p.written], {}),
                 GatedResult(wave, rate, EstimateAligner().align(wave, rate, s.spoken), 0, 0))
                for p, s in zip(parts, spoken)]
    pauses = {id(i): round(i.seconds * rate) for i in script if isinstance(i, Pause)}
    joined = join_script(script, parts, spoken, outcomes, pauses, rate)
    assert joined.normalized_text == "Intro. Title here Done"
    assert [joined.normalized_text[w.char_start:w.char_end] for w in joined.normalized.words] == \
        [w.text for w in joined.normalized.words] == ["Intro.", "Title", "here", "Done"]
