"""Scripts in the synthesize action: markup (pauses, SSML breaks, voice tags), segments, a target duration."""

import base64
import dataclasses
import re

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, decode_b64_audio, wav_base64
from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.text.markup import BREAK_STRENGTH_S, Pause, PauseRules, SpeechPart, parse_script

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


# -- the markup --------------------------------------------------------------------------------------


def test_every_pause_form_and_its_length():
    text = ('One [pause] two [pause:1.5s] three [pause:250ms] four <break time="1s"/> five '
            "<break time='500ms'/> six <break strength=\"x-strong\"/> seven <break/> eight.\n\nNine.")
    script = parse_script(text)
    pauses = [i.seconds for i in script if isinstance(i, Pause)]
    assert pauses == [0.5, 1.5, 0.25, 1.0, 0.5, BREAK_STRENGTH_S["x-strong"], BREAK_STRENGTH_S["medium"], 0.6]
    said = [text[i.char_start:i.char_end] for i in script if isinstance(i, SpeechPart)]
    assert said == ["One", "two", "three", "four", "five", "six", "seven", "eight.", "Nine."]


def test_the_pause_settings_set_the_lengths_and_bounds():
    rules = PauseRules.of(Settings(pause_s=0.2, paragraph_pause_s=1.0, max_pause_s=2.0, max_total_pause_s=3.5))
    script = parse_script("A [pause] b.\n\nC [pause:2s] d", rules=rules)
    assert [i.seconds for i in script if isinstance(i, Pause)] == [0.2, 1.0, 2.0]
    with pytest.raises(JobError, match="^text: pause of 2.5 s at character 2 is longer than 2 s"):
        parse_script("A [pause:2.5s] b", rules=rules)
    with pytest.raises(JobError, match="^text: pauses add up to 4 s, more than 3.5 s"):
        parse_script("A [pause:2s] b [pause:2s] c", rules=rules)


def test_pauses_in_one_gap_add_up_and_a_written_pause_replaces_the_paragraph_pause():
    script = parse_script("A.\n\n[pause:1s] [pause:2s]\n\nB. [pause:300ms]")
    assert [type(i).__name__ for i in script] == ["SpeechPart", "Pause", "SpeechPart", "Pause"]
    assert script[1].seconds == 3.0 and script[3].seconds == 0.3  # a pause at the end is kept


def test_voice_tags_make_segments_and_other_brackets_are_text():
    text = "Intro [see page 4]. [voice:anna] Hi, 3 < 4. [voice:default] Bye. [voice:anna] Again."
    parts = [i for i in parse_script(text) if isinstance(i, SpeechPart)]
    assert [(text[p.char_start:p.char_end], p.voice, p.segment) for p in parts] == [
        ("Intro [see page 4].", None, 0), ("Hi, 3 < 4.", "anna", 1), ("Bye.", "default", 2), ("Again.", "anna", 3)]
    assert parts[1].voice_at == text.index("[voice:anna]")


@pytest.mark.parametrize("text, error", [
    ("Hello [pause:1.5s and more", "text: unclosed tag at character 6"),
    ("Well <break time=\"1s\" and on", "text: unclosed tag at character 5"),
    ("Hey! [paws] then", "text: unknown tag '[paws]' at character 5"),
    ("Ha [laughs] ha", "text: unknown tag '[laughs]' at character 3"),
    ("So <emphasis>this</emphasis>", "text: unknown tag '<emphasis>' at character 3"),
    ("Some words here and then [pause:30s] more", "text: pause of 30 s at character 25 is longer than 10 s"),
    ("A <break time=\"12000ms\"/> b", "text: pause of 12 s at character 2 is longer than 10 s"),
    ("A [pause:fast] b", "text: tag '[pause:fast]' at character 2: the length must be like 1.5s or 500ms"),
    ("A <break strength=\"huge\"/> b", "text: <break> at character 2: strength must be one of"),
    ("A [voice:] b", "text: tag '[voice:]' at character 2 names no voice"),
    ("[pause:1s] <break/>", "text: has no words to speak outside its tags"),
    ("A" + " [pause:10s] a" * 7, "text: pauses add up to 70 s, more than 60 s"),
])
def test_markup_errors_name_the_character(text, error):
    from f5_worker.errors import JobError

    with pytest.raises(JobError) as caught:
        parse_script(text)
    assert str(caught.value).startswith(error), str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("A <break time=“3s”/> b", 3.0), ("A <break time=‘2s’/> b", 2.0), ("A <break time=1500ms/> b", 1.5),
])
def test_a_break_time_in_typographic_quotes_or_unquoted_is_read(text, seconds):
    """Pasted from a word processor or written as HTML allows: the length written, never the 0.75 s default."""
    assert [i.seconds for i in parse_script(text) if isinstance(i, Pause)] == [seconds]


@pytest.mark.parametrize("text", ['A <break time="3s" foo/> b', "A <break time=3 s/> b"])
def test_a_break_with_words_it_cannot_read_is_refused(text):
    from f5_worker.errors import JobError

    with pytest.raises(JobError, match="<break> at character 2: cannot read"):
        parse_script(text)


@pytest.mark.parametrize("text", ["if x < y then z", "apples < oranges and pears > plums", "a <= b"])
def test_a_less_than_sign_before_a_space_is_text(text):
    """As in XML, a tag's name follows "<" directly: "x < y" is written text, never an unclosed tag."""
    assert parse_script(text) == [SpeechPart(0, len(text))]


_WORDS = st.sampled_from(["Hello", "world,", "$42.50", "3rd", "1,000", "Dr.", "it's", "ok.", "%", "7", "café"])
_TAGS = st.sampled_from(["[pause]", "[pause:1s]", "[pause:250ms]", '<break time="300ms"/>', "<break/>",
                         "[voice:default]", "\n\n", " [see 2] "])


@given(st.lists(st.one_of(_WORDS, _TAGS), min_size=1, max_size=14))
@example(["[voice:default]", "Hello", "\n\n", "$42.50"])
def test_parts_are_the_text_as_written_without_its_tags(tokens):
    text = " ".join(tokens)
    if not any(ch.isalnum() for tok in tokens if tok in _WORDS.elements for ch in tok) and "[see 2]" not in text:
        with pytest.raises(JobError, match="^text: has no words to speak"):
            parse_script(text)
        return
    script = parse_script(text)
    parts = [i for i in script if isinstance(i, SpeechPart)]
    spoken = " ".join(text[p.char_start:p.char_end] for p in parts)
    assert not re.search(r"\[(pause|voice)|<break", spoken)
    # every character outside the parts is a tag or whitespace: nothing written is lost
    covered = np.zeros(len(text), dtype=bool)
    for p in parts:
        covered[p.char_start:p.char_end] = True
    rest = "".join(ch if not c else " " for ch, c in zip(text, covered))
    leftover = re.sub(r"\[pause(:[^\]]*)?\]|\[voice:[^\]]*\]|<break[^>]*>|\s", "", rest)
    assert not any(ch.isalnum() for ch in leftover), leftover
    starts = [p.char_start for p in parts]
    assert starts == sorted(starts)


# -- timings mapped to the text as written (estimate aligner: pure mapping, no model) ------------------


@given(st.lists(st.one_of(_WORDS, _TAGS), min_size=1, max_size=12), st.booleans())
@example(["Hello", "[pause:1s]", "$42.50", "[voice:default]", "3rd"], True)
def test_every_word_is_the_text_as_written_at_its_offsets(tokens, as_segments):
    from f5_worker.actions.script import has_voices, join_script, script_of
    from f5_worker.alignment.estimate import EstimateAligner
    from f5_worker.alignment.quality import GatedResult
    from f5_worker.schema import parse_job
    from f5_worker.tts.sampler import SynthesisResult

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
    from f5_worker.actions.script import spoken_text

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
    from f5_worker import audio
    from f5_worker.actions.script import PART_FADE_S, join_script, script_of, spoken_text
    from f5_worker.alignment.estimate import EstimateAligner
    from f5_worker.alignment.quality import GatedResult
    from f5_worker.schema import parse_job
    from f5_worker.tts.sampler import SynthesisResult

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


# -- through the worker, on the tiny model --------------------------------------------------------------


def _silent_runs(wave: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of runs of exact zeros longer than 0.1 s."""
    zero = np.concatenate([[False], wave == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return [(a / rate, b / rate) for a, b in zip(edges[::2], edges[1::2]) if b - a > rate // 10]


def test_a_pause_is_silence_of_its_length_between_the_words_and_shifts_the_words_after_it(worker):
    out = run(worker, text="Before the pause. [pause:1.5s] After it.", seed=3, caption_formats=["vtt"])
    assert "error" not in out, out
    wave, rate = decode_b64_audio(out["audio_base64"])
    words = out["words"]
    assert [w["word"] for w in words] == ["Before", "the", "pause.", "After", "it."]
    runs = _silent_runs(wave, rate)
    gap = [(a, b) for a, b in runs if b - a >= 1.5]
    assert len(gap) == 1, runs
    start, end = gap[0]
    assert words[2]["end"] <= start + 0.001 and words[3]["start"] >= end - 0.001
    assert words[3]["start"] - words[2]["end"] >= 1.5
    text = "Before the pause. [pause:1.5s] After it."
    assert all(w["word"] == text[w["char_start"]:w["char_end"]] for w in words)
    assert out["normalized_text"] == "Before the pause. After it."
    assert [w["word"] for w in out["normalized_words"]] == ["Before", "the", "pause.", "After", "it."]
    assert "After" in out["captions"]["vtt"]


def test_two_voices_as_segments_and_as_tags_give_the_same_words(worker, monkeypatch):
    clip = wav_base64(*__import__("soundfile").read(DEFAULT_VOICE_WAV, dtype="float32"))
    segments = [{"text": "Hello from the first voice."},
                {"ref_audio_base64": clip, "ref_text": DEFAULT_VOICE_TEXT, "text": "And [pause:0.5s] the second."}]
    out = run(worker, segments=segments, seed=2, char_timings=True)
    assert "error" not in out, out
    words = out["words"]
    assert [(w["word"], w["segment"], w["voice"]) for w in words] == [
        ("Hello", 0, "default"), ("from", 0, "default"), ("the", 0, "default"), ("first", 0, "default"),
        ("voice.", 0, "default"), ("And", 1, "ref"), ("the", 1, "ref"), ("second.", 1, "ref")]
    for w in words + out["chars"]:
        key = "word" if "word" in w else "char"
        assert w[key] == segments[w["segment"]]["text"][w["char_start"]:w["char_end"]]
    assert words[6]["start"] - words[5]["end"] >= 0.5  # the pause inside the second segment
    assert out["normalized_text"] == "Hello from the first voice. And the second."
    assert out["normalized_chars"] and "voice" in out["normalized_words"][0]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    tagged = run(worker, text="Hello from the first voice. [voice:default] And [pause:0.5s] the second.", seed=2)
    assert [(w["word"], w["segment"]) for w in tagged["words"]] == [(w["word"], w["segment"]) for w in words]
    assert "default: Hello" in out["captions"]["srt"] and "ref: And" in out["captions"]["srt"]
    import dataclasses

    action = worker.synthesize
    monkeypatch.setattr(action, "settings", dataclasses.replace(action.settings, caption_speaker_prefix=False))
    bare = run(worker, segments=segments, seed=2)
    assert "default:" not in bare["captions"]["srt"] and "\nAnd" in bare["captions"]["srt"]

    unknown = run(worker, text="Hi there. [voice:nobody] Bye.")
    assert unknown["error"] == "text: unknown voice 'nobody' at character 10"
    assert run(worker, text="x", segments=[{"text": "y"}])["error"].startswith("segments: give either text")
    bad = run(worker, segments=[{"text": "ok"}, {"ref_audio_base64": clip, "text": "no transcript"}])
    assert bad["error"].startswith("segments.1.ref_text: is required")
    assert run(worker, segments=[{"text": "a [voice:default] b"}])["error"].startswith("segments.0.text: [voice:]")
    gap = run(worker, segments=[{"text": "Hi there."}, {"text": "[pause:1s]"}, {"text": "Bye now."}], seed=1)
    assert gap["words"][2]["start"] - gap["words"][1]["end"] >= 1.0
    assert run(worker, segments=[{"text": "[pause]"}])["error"] == "segments: have no words to speak outside their tags"
    assert run(worker, segments=[{"text": "[pause:8s]"}] * 8 + [{"text": "x"}])["error"].startswith(
        "segments: pauses add up to 64 s")
    assert run(worker, segments=[{"text": "x"}] * 51)["error"] == "segments: are 51; at most 50 are taken (MAX_SEGMENTS)"
    assert run(worker, text="Still serving.")["duration"] > 0


def test_the_built_in_voice_is_default_wherever_a_job_names_a_voice(worker):
    """``[voice:default]``, a segment's ``"voice": "default"`` and the request's own ``voice`` all name F5-TTS's
    built-in voice (in any case), and its words carry the voice ``default``: one name for one voice."""
    tagged = run(worker, text="Hello there. [voice:default] Bye now.", seed=3)
    segments = run(worker, segments=[{"text": "Hello there."}, {"voice": "default", "text": "Bye now."}], seed=3)
    assert "error" not in tagged and "error" not in segments, (tagged, segments)
    assert [w["voice"] for w in segments["words"]] == ["default"] * 4 == [w["voice"] for w in tagged["words"]]
    own = run(worker, text="Bye now.", voice="DEFAULT", seed=3)
    assert own["audio_base64"] == run(worker, text="Bye now.", seed=3)["audio_base64"]
    assert run(worker, text="Hi.", voice="default", ref_text="x")["error"].startswith("ref_text: does not apply")


def test_duration_sets_the_total_length_within_one_frame_and_splits_it_in_proportion_to_the_text(worker):
    from f5_worker.actions.script import ScriptPart, VoiceSource, fit_duration

    ref = worker.synthesize.reference_for(__import__("f5_worker.schema", fromlist=["x"]).parse_job({"text": "x"}))
    texts = ["A short line.", "A much longer line of text, which should get a larger share of the time."]
    parts = [ScriptPart(t, 0, VoiceSource(), 0, 1.0, ref=ref) for t in texts]
    natural = fit_duration(parts, texts, 24000, 6.0, sample_rate=24000, hop_length=256, cross_fade_s=0.15)
    shares = [sum(p.chunk_frames) for p in parts]
    assert shares[1] / shares[0] == pytest.approx(len(texts[1]) / len(texts[0]), rel=0.05)
    assert parts[0].speed == parts[1].speed == natural

    hop = worker.models.hop_length
    for target in (5.0, 8.5):
        out = run(worker, text="Dubbing needs a target length. [pause:0.5s] This one has two parts.",
                  duration=target, seed=1)
        assert "error" not in out, out
        wave, rate = decode_b64_audio(out["audio_base64"])
        assert abs(len(wave) - target * rate) <= hop, (len(wave), target * rate)
    long_text = ("This sentence is here to make a long text, so that it is cut into several chunks. " * 8).strip()
    out = run(worker, text=long_text + " [pause:1s] And a short part.", duration=40, seed=2, word_timings=False,
              caption_formats=[])
    wave, rate = decode_b64_audio(out["audio_base64"])
    assert out["chunks"] >= 3 and abs(len(wave) - 40 * rate) <= hop  # cross-fades between chunks counted
    out = run(worker, text="Far too many words for so little time, surely.", duration=0.2)
    assert re.fullmatch(r"duration: 0\.2 s would need speed [\d.]+; the text needs between [\d.]+ and [\d.]+ s",
                        out["error"]), out
    assert run(worker, text="Hi there.", duration=3, speed=1.2)["error"].startswith("duration: sets the speed")


def test_a_scripts_parts_are_sampled_in_one_call_per_round_of_the_quality_gate(worker, monkeypatch):
    """Three parts, two voices: one engine call holds them all; the gate re-samples the parts that fail
    (the tiny model speaks noise: all of them) in one more call."""
    queued = []
    monkeypatch.setattr(worker.synthesize.engine, "on_queued", queued.append)
    text = "One part here. [pause:0.3s] [voice:default] Another part. [voice:default] A third one."
    out = worker.handle({"text": text, "nfe_step": 4, "max_retries": 1, "seed": 8})
    assert "error" not in out, out
    assert [len(r.texts) for r in queued] == [3, 3]
    assert len({id(r) for q in queued for r in q.chunk_refs}) == 1  # the same voice: one prepared reference
    assert out["quality"]["retries"] == 3 and out["timing"]["retries_ms"] > 0
    again = worker.handle({"text": text, "nfe_step": 4, "max_retries": 1, "seed": 8})
    assert again["audio_base64"] == out["audio_base64"]  # a script with a seed is reproducible as a whole


def test_numbers_are_said_in_words_and_timed_as_written(worker):
    text = "It costs $42.50 on May 3rd."
    out = run(worker, text=text, seed=5)
    assert "forty" in out["normalized_text"] and "$" not in out["normalized_text"]
    assert [w["word"] for w in out["words"]] == text.split()
    assert all(w["word"] == text[w["char_start"]:w["char_end"]] for w in out["words"])
    said = out["normalized_text"]
    assert all(w["word"] == said[w["char_start"]:w["char_end"]] for w in out["normalized_words"])
    assert len(out["normalized_words"]) > len(out["words"])
    price = out["words"][2]
    spoken = [w for w in out["normalized_words"] if price["start"] <= w["start"] and w["end"] <= price["end"]]
    assert len(spoken) >= 3  # "$42.50" lasts from "forty" to "cents"
    plain = run(worker, text=text, seed=5, normalize=False, language="en")
    assert plain["normalized_text"] == text and plain["words"][2]["word"] == "$42.50"
    assert run(worker, text=text, language="english!")["error"].startswith("language: must be a language tag")


def test_the_language_is_guessed_from_the_words_not_from_the_tags(worker):
    """A Chinese script with its tags has more Latin letters in the tags than Chinese characters in the text."""
    text = "[voice:default] 你好。[pause:1s] <break time=\"500ms\"/> 再见。"
    out = run(worker, text=text, word_timings=False, caption_formats=[])
    assert out["language"] == "zh", out.get("error")


def test_streamed_script_sends_pauses_as_silent_items(worker, monkeypatch):
    import dataclasses

    monkeypatch.setattr(worker, "settings", dataclasses.replace(worker.settings, streaming=True))
    items = list(worker.items({**FAST, "text": "First piece here. [pause:1s] Second piece.", "stream": True,
                                "seed": 4}, job_id="s"))
    done = items[-1]
    assert done.get("done"), done
    pauses = [i for i in items if i.get("pause")]
    assert len(pauses) == 1 and pauses[0]["duration"] == 1.0
    wave, rate = decode_b64_audio(pauses[0]["audio_base64"])
    assert len(wave) == rate and not wave.any()
    text = "First piece here. [pause:1s] Second piece."
    words = [w for i in items[:-1] for w in i.get("words", [])]
    assert [w["word"] for w in words] == ["First", "piece", "here.", "Second", "piece."]
    assert all(w["word"] == text[w["char_start"]:w["char_end"]] for w in words)
    assert words[3]["start"] >= pauses[0]["offset"] + 1.0
    assert done["normalized_text"] == "First piece here. Second piece."
    voices = list(worker.items({**FAST, "segments": [{"text": "One two three four five."}, {"text": "Six seven."}],
                                "stream": True, "seed": 4, "word_timings": False, "caption_formats": []}, job_id="s"))
    assert [(i["segment"], i["text_start"]) for i in voices[:-1]] == [(0, 0), (1, 0)]
    assert voices[0]["voice"] == "default" and voices[-1]["done"]
    refused = list(worker.items({**FAST, "text": "Hi there.", "duration": 3, "stream": True}, job_id="s"))
    assert refused[0]["error"].startswith("duration: is not available with stream")
    # a break of no length sends no item: an empty FLAC or MP3 is no audio a player can decode
    items = list(worker.items({**FAST, "text": 'One. <break strength="none"/> Two.', "stream": True, "seed": 4,
                               "output_format": "flac", "word_timings": False, "caption_formats": []}, job_id="s"))
    assert [i.get("pause") for i in items[:-1]] == [None, None] and items[-1]["pieces"] == 2
    assert all(decode_b64_audio(i["audio_base64"])[0].size for i in items[:-1])


def test_a_refused_duration_quotes_a_speed_outside_the_range(worker):
    """A target just out of reach is refused with the speed it would need, and that speed is shown out of the
    0.3-3.0 range, not rounded into it ("would need speed 3.0")."""
    text = "Far too many words for so little time, surely."
    needed = float(re.search(r"speed ([\d.]+)", run(worker, text=text, duration=0.2)["error"]).group(1))
    natural_s = 0.2 * needed  # the text's length at speed 1, to within the rounding of the message
    for speed, out_of_range in ((3.03, lambda s: s > 3.0), (0.295, lambda s: s < 0.3)):
        error = run(worker, text=text, duration=round(natural_s / speed, 4))["error"]
        quoted = float(re.search(r"would need speed ([\d.]+);", error).group(1))
        assert out_of_range(quoted), error


def test_an_empty_list_of_segments_is_refused_in_words_of_its_own(worker):
    assert run(worker, segments=[])["error"] == "segments: is empty; give at least one segment, or text"


def test_each_voice_given_as_audio_has_its_own_label_and_the_same_audio_keeps_one():
    """Labels are decided from the request alone: the same URL or base64 string is one voice; a label a
    stored voice of the script has is skipped."""
    from f5_worker.actions.script import script_of
    from f5_worker.schema import parse_job

    clip = {"ref_text": "Some words."}
    request = parse_job({"ref_audio_url": "https://example.com/own.wav", "ref_text": "Own.", "segments": [
        {"text": "a"},
        {**clip, "ref_audio_base64": "UklGRgAAAA==", "text": "b"},
        {"voice": "ref2", "text": "c"},
        {**clip, "ref_audio_url": "https://example.com/own.wav", "text": "d"},
        {**clip, "ref_audio_base64": "UklGRgEAAA==", "text": "e"},
        {**clip, "ref_audio_base64": "UklGRgAAAA==", "text": "f"},
    ]})
    parts = [p for p in script_of(request, PauseRules.of(Settings()), 50) if not isinstance(p, Pause)]
    assert [p.source.label for p in parts] == ["ref", "ref3", "ref2", "ref", "ref4", "ref3"]
    only_segments = parse_job({"segments": [{**clip, "ref_audio_base64": "UklGRgAAAA==", "text": "a"},
                                            {**clip, "ref_audio_base64": "UklGRgEAAA==", "text": "b"}]})
    assert [p.source.label for p in script_of(only_segments, PauseRules.of(Settings()), 50)] == ["ref", "ref2"]


def test_two_voices_given_as_audio_are_two_speakers_in_words_and_captions(worker):
    import soundfile

    wave, rate = soundfile.read(DEFAULT_VOICE_WAV, dtype="float32")
    first, second = wav_base64(wave, rate), wav_base64(wave * 0.8, rate)  # two clips: two voices to the worker
    segments = [{"ref_audio_base64": first, "ref_text": DEFAULT_VOICE_TEXT, "text": "Hello there."},
                {"ref_audio_base64": second, "ref_text": DEFAULT_VOICE_TEXT, "text": "Hi back."},
                {"ref_audio_base64": first, "ref_text": DEFAULT_VOICE_TEXT, "text": "Bye now."}]
    out = run(worker, segments=segments, seed=2, caption_formats=["srt", "vtt", "ass"])
    assert "error" not in out, out
    assert [(w["word"], w["voice"]) for w in out["words"]] == [
        ("Hello", "ref"), ("there.", "ref"), ("Hi", "ref2"), ("back.", "ref2"), ("Bye", "ref"), ("now.", "ref")]
    captions = out["captions"]
    assert "<v ref>Hello" in captions["vtt"] and "<v ref2>Hi" in captions["vtt"] and "<v ref>Bye" in captions["vtt"]
    styles = set(re.findall(r"^Style: ([^,]+),", captions["ass"], re.M))
    dialogue_styles = re.findall(r"^Dialogue: (?:[^,]*,){3}([^,]*),\1,", captions["ass"], re.M)
    assert {"ref", "ref2"} <= styles and dialogue_styles[0] == "ref" and "ref2" in dialogue_styles
    assert "ref: Hello" in captions["srt"] and "ref2: Hi" in captions["srt"] and "ref: Bye" in captions["srt"]


# -- each part in its own voice ------------------------------------------------------------------------

TOWN_WAV = DEFAULT_VOICE_WAV.parent.parent / "multi" / "town.flac"  # another speaker, shipped with f5-tts
TOWN_TEXT = "A second voice, from a recording of its own."  # the tiny model speaks noise: any fitting text does


@pytest.fixture
def two_voice_worker(worker, tiny_settings, tmp_path, no_bucket_env):
    """A worker whose voice store (a directory) holds two voices of different audio and transcripts."""
    from f5_worker.worker import Worker

    w = Worker(dataclasses.replace(tiny_settings, network_volume_path=tmp_path), worker.models)
    for name, wav, text in (("anna", DEFAULT_VOICE_WAV, DEFAULT_VOICE_TEXT), ("town", TOWN_WAV, TOWN_TEXT)):
        saved = w.handle({"action": "upload_voice", "name": name, "ref_text": text,
                          "audio_base64": base64.b64encode(wav.read_bytes()).decode()})
        assert "error" not in saved, saved
    return w


@pytest.mark.parametrize("form", ["tags", "segments"])
def test_each_part_of_a_script_is_sampled_with_the_reference_of_its_own_voice(two_voice_worker, form):
    """A dialogue must not be spoken in one voice: each part is sampled with the reference of the voice the
    script gives it, seen in the references the sampler was handed and in the audio, which differs from
    the same script spoken by either voice alone (same seed). The words' labels alone would not show it:
    they come from the script, not from the reference loaded."""
    w = two_voice_worker
    queued = []
    w.synthesize.engine.on_queued = queued.append  # this worker's own engine: records what it is handed

    def say(first: str, second: str) -> dict:
        if form == "tags":
            script = {"text": f"[voice:{first}] Hello there. [voice:{second}] Hi back."}
        else:
            script = {"segments": [{"voice": first, "text": "Hello there."}, {"voice": second, "text": "Hi back."}]}
        out = run(w, **script, seed=3, caption_formats=[])
        assert "error" not in out, out
        return out

    dialogue = say("anna", "town")
    assert [(w["word"], w["voice"]) for w in dialogue["words"]] == [
        ("Hello", "anna"), ("there.", "anna"), ("Hi", "town"), ("back.", "town")]
    assert [r.text.strip() for r in queued[0].chunk_refs] == [DEFAULT_VOICE_TEXT, TOWN_TEXT]
    for alone in ("anna", "town"):
        same = say(alone, alone)["audio_base64"] == dialogue["audio_base64"]
        assert not same, f"the dialogue sounds as if {alone} spoke it all"


# -- the model and the language a script's stored voices keep --------------------------------------


def test_the_first_voices_that_keep_a_model_and_a_language_decide_each_read_once(tmp_path):
    """``resolve_script`` through a real voice store: the request's ``voice`` first, then the voices in the
    order they speak; each voice's metadata read once, for the model, the language and the references."""
    from collections import Counter

    from f5_worker.actions.script import resolve_script
    from f5_worker.errors import JobError
    from f5_worker.schema import parse_job
    from f5_worker.storage.local import LocalStorage
    from f5_worker.voices import VoiceStore

    store = VoiceStore(LocalStorage(tmp_path))
    wav = DEFAULT_VOICE_WAV.read_bytes()
    for name, kept in {"plain": {}, "french": {"language": "fr"}, "frmodel": {"model": "tiny-fr", "language": "de"},
                       "tiny": {"model": "tiny"}, "gone": {"model": "gone"}}.items():
        store.save(name, wav, ref_text=DEFAULT_VOICE_TEXT, **kept)
    reads: Counter = Counter()
    read = store.info

    def counted(name, field="name"):
        reads[name] += 1
        return read(name, field)

    store.info = counted  # counts the reads; the store answers them

    def resolve(**job):
        reads.clear()
        return resolve_script(parse_job(job), PauseRules.of(Settings()), 50, store, ["tiny", "tiny-fr"])

    spoken = [{"voice": v, "text": "Hi."} for v in ("plain", "french", "plain", "frmodel", "tiny")]
    resolved = resolve(segments=spoken)
    assert (resolved.model, resolved.language) == ("tiny-fr", "fr")
    assert reads == {"plain": 1, "french": 1, "frmodel": 1, "tiny": 1} and set(resolved.voice_infos) == set(reads)
    assert len(resolved.parts) == 5 and resolved.items == resolved.parts
    resolved = resolve(text="Hi. [voice:french] Salut. [voice:frmodel] Hallo.", voice="tiny")
    assert (resolved.model, resolved.language) == ("tiny", "fr") and reads == {"tiny": 1, "french": 1, "frmodel": 1}
    # the request's voice is read even where no part speaks it, and what it keeps is then overruled
    resolved = resolve(text="[voice:french] Salut.", voice="tiny", model="tiny-fr", language="en")
    assert (resolved.model, resolved.language, reads) == ("tiny-fr", "en", {"tiny": 1, "french": 1})
    with pytest.raises(JobError) as refused:  # a voice that is not there is refused, not ignored
        resolve(text="[voice:french] Salut.", voice="nobody", model="tiny-fr", language="en")
    assert str(refused.value).startswith("voice: no voice named 'nobody'")
    resolved = resolve(text="[voice:french] Salut.", voice="tiny", model="tiny-fr")
    assert (resolved.model, resolved.language, reads) == ("tiny-fr", "fr", {"tiny": 1, "french": 1})
    resolved = resolve(text="Hi. [pause] Bye.", language="de")
    assert (resolved.model, resolved.language, len(resolved.items), reads) == (None, "de", 3, Counter())
    # a kept model this worker lacks is refused where the voice was named; so is a voice that is not there
    made_for = "voice 'gone' was made for model 'gone', which this worker does not have; give model (one of tiny, tiny-fr)"
    with pytest.raises(JobError) as refused:
        resolve(segments=[{"voice": "plain", "text": "Hi."}, {"voice": "gone", "text": "Hi."}])
    assert str(refused.value) == f"segments.1.voice: {made_for}"
    with pytest.raises(JobError) as refused:
        resolve(text="Hi. [voice:gone] Bye.")
    assert str(refused.value) == f"text: {made_for} (at character 4)"
    with pytest.raises(JobError) as refused:
        resolve(text="Hi. [voice:nobody] Bye.", voice="plain")
    assert str(refused.value) == "text: unknown voice 'nobody' at character 4"


def test_no_word_or_character_is_rounded_past_the_end_of_the_audio(worker):
    """Times are placed in the whole to the millisecond; a last word ending less than half a millisecond
    before the end of the audio (10.6987 s here, on the tiny model) must not end at 10.699."""
    from f5_worker.actions.script import shifted
    from f5_worker.timed_text import TimedSpan

    word = TimedSpan("end.", 0.5, 0.69866, 1.0, 0, 4)
    assert (shifted(word, 1.0, 0, 1.69866).start, shifted(word, 1.0, 0, 1.69866).end) == (1.5, 1.698)
    out = run(worker, text="Às 2:00, 22:00:00 e 1:00; cartão 4111-1111-1111-1111.", language="pt", seed=1,
              char_timings=True)
    assert "error" not in out, out
    assert all(0 <= s["start"] <= s["end"] <= out["duration"] for s in out["words"] + out["chars"]), out["duration"]


# -- bounds: pauses compared in whole milliseconds, parts counted, tags read once ----------------------


def test_pauses_exactly_at_the_total_bound_are_taken_in_whole_milliseconds():
    """Thirty 0.1 s pauses add up to 3.0000000000000013 as floats: at a 3 s bound they were refused as
    "pauses add up to 3 s, more than 3 s"."""
    rules = PauseRules.of(Settings(max_total_pause_s=3.0))
    script = parse_script("Go [pause:100ms] " * 30, rules=rules)
    assert sum(isinstance(i, Pause) for i in script) == 30
    with pytest.raises(Exception, match=r"^text: pauses add up to 3\.1 s, more than 3 s$"):
        parse_script("Go [pause:100ms] " * 31, rules=rules)
    tenths = PauseRules.of(Settings(max_total_pause_s=0.3))
    assert len(parse_script('A <break time="0.1s"/> b <break time="100ms"/> c [pause:.1s] d', rules=tenths)) == 7


def test_a_refused_total_names_the_paragraph_breaks_it_counts():
    rules = PauseRules.of(Settings(paragraph_pause_s=0.75, max_total_pause_s=3.0))
    assert len(parse_script("Para.\n\n" * 5, rules=rules)) == 9  # four breaks, 3 s: at the bound
    with pytest.raises(Exception) as refused:
        parse_script("Para.\n\n" * 6, rules=rules)
    assert str(refused.value) == ("text: pauses add up to 3.75 s, more than 3 s (5 of them are blank lines "
                                  "between paragraphs, 0.75 s each)")
    with pytest.raises(Exception) as refused:
        parse_script("One. [pause:2.5s] Two.\n\nThree.", rules=rules)
    assert str(refused.value).endswith("(1 of them is a blank line between paragraphs, 0.75 s each)")
    with pytest.raises(Exception) as refused:
        parse_script("One. [pause:2s] Two. [pause:2s] Three.", rules=rules)
    assert str(refused.value) == "text: pauses add up to 4 s, more than 3 s"  # no paragraph: none named


@pytest.mark.parametrize("tag", ['<break time="1s" time="9s"/>', "<break strength='weak' STRENGTH='x-strong'/>",
                                 '<break time="2s" strength="weak" time=2s/>'])
def test_a_break_that_gives_an_attribute_twice_is_refused(tag):
    with pytest.raises(Exception) as refused:
        parse_script(f"Wait {tag} now.")
    name = re.search(r"(\w+)=.*\b\1=", tag.lower()).group(1)
    assert str(refused.value) == f"text: <break> at character 5 gives the attribute '{name}' twice"


@pytest.mark.parametrize("length", ["9" * 400 + "s", "1" + "0" * 330 + "ms", "9" * 309 + ".5s"])
def test_a_pause_too_long_to_be_a_number_is_refused_with_the_real_bound(length):
    with pytest.raises(Exception) as refused:
        parse_script(f"Hi [pause:{length}] there", rules=PauseRules.of(Settings(max_pause_s=7.5)))
    assert str(refused.value) == "text: pause at character 3 is longer than 7.5 s"


def test_parts_made_by_tags_are_bounded_like_segments(worker):
    """``MAX_SEGMENTS`` bounded segments only: "a[pause:0s]" × 454 was sampled, 454 references in one call."""
    from f5_worker.actions.script import script_of
    from f5_worker.schema import parse_job

    rules = PauseRules.of(Settings())
    many = "Go. <break strength='none'/> " * 12
    assert sum(not isinstance(i, Pause) for i in script_of(parse_job({"text": many}), rules, 50, 12)) == 12
    with pytest.raises(Exception) as refused:
        script_of(parse_job({"text": many + "Stop."}), rules, 50, 12)
    assert str(refused.value) == ("text: holds 13 parts (runs of text between tags, each spoken on its own); "
                                  "at most 12 are taken (MAX_SCRIPT_PARTS)")
    segments = parse_job({"segments": [{"text": "One [pause:0s] two [pause:0s] three"}] * 5})
    with pytest.raises(Exception, match=r"^segments: hold 15 parts .*at most 12 are taken \(MAX_SCRIPT_PARTS\)$"):
        script_of(segments, rules, 50, 12)
    out = run(worker, text="x [pause:0s] " * (Settings().max_script_parts + 1))
    assert out["error"].startswith(f"text: holds {Settings().max_script_parts + 1} parts"), out


# -- short parts: sampled with the parts of their voice next to them -----------------------------------


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
    monkeypatch.setattr(worker.synthesize.engine, "on_queued", queued.append)
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
    from f5_worker.actions import script

    queued = []
    monkeypatch.setattr(worker.synthesize.engine, "on_queued", queued.append)
    count = 35
    text = " ".join(f"Line {n} of the script. [pause:20ms]" for n in range(count))
    out = run(worker, text=text, seed=2, caption_formats=[])
    assert "error" not in out, out
    calls = [len(r.texts) for r in queued]
    assert sum(calls) == count and len(calls) > 1, calls
    assert calls == [script.MAX_RUNS_PER_CALL, count - script.MAX_RUNS_PER_CALL]
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
    from f5_worker.actions.script import join_script, sampled_texts, script_of, split_sampled, spoken_text
    from f5_worker.alignment.estimate import EstimateAligner
    from f5_worker.alignment.quality import GatedResult
    from f5_worker.schema import parse_job
    from f5_worker.tts.chunking import too_short
    from f5_worker.tts.reference import prepare_reference
    from f5_worker.tts.sampler import SynthesisResult

    rate = 24000
    ref = prepare_reference(np.full(rate, 0.1, np.float32), rate, "Reference words.")
    request = parse_job({"segments": [{"text": t, "speed": 1.25 if fast else None} for t, fast in zip(texts, faster)]})
    script = script_of(request, PauseRules.of(Settings()), 50)
    parts = [i for i in script if not isinstance(i, Pause)]
    for part in parts:
        part.ref = ref
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


def test_a_flagged_spoken_word_flags_only_the_written_words_it_was_said_for():
    """Written words may touch (a CJK character is a word of its own): the one after a flagged word starts
    where the flagged one ends, and is not flagged with it."""
    from f5_worker.actions.script import written_flagged
    from f5_worker.text.normalize import normalize
    from f5_worker.timed_text import Alignment, TimedSpan

    said = normalize("你好世界", "zh")
    words = [TimedSpan(c, i * 0.2, i * 0.2 + 0.2, 0.9, i, i + 1) for i, c in enumerate(said.spoken)]
    for flagged in ([0], [1], [3], [1, 2]):
        found = Alignment(words, [], 0.9, "sphinx", False, flagged_words=flagged)
        assert written_flagged(said, found, words) == flagged
