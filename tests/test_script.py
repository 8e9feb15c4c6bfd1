"""Scripts in the synthesize action: markup (pauses, SSML breaks, voice tags), segments, a target duration."""

import re

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, decode_b64_audio, wav_base64
from f5_worker.config import Settings
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
    with pytest.raises(Exception, match="pause of 2.5 s at character 2 is longer than 2 s"):
        parse_script("A [pause:2.5s] b", rules=rules)
    with pytest.raises(Exception, match="pauses add up to 4 s, more than 3.5 s"):
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
        with pytest.raises(Exception, match="no words to speak"):
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
    if not any(ch.isalnum() for ch in re.sub(r"\[[^\]]*\]|<[^>]*>", "", text)):
        return
    if as_segments:  # the same text as two segments: offsets index each segment's own text
        cut = len(tokens) // 2
        texts = [" ".join(tokens[:cut]), " ".join(tokens[cut:])]
        texts = [t.replace("[voice:default]", "") for t in texts]
        texts = [t for t in texts if any(ch.isalnum() for ch in re.sub(r"\[[^\]]*\]|<[^>]*>", "", t))]
        if not texts:
            return
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
