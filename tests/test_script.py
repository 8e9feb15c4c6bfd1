"""A synthesize job as a script (synthesis/script.py): its parts and pauses from tags or segments, each part in
its own voice, the labels of voices given as audio, the model and language its stored voices keep (each read
once), the bound on its parts; and scripts spoken through the worker."""

import base64
import dataclasses
import re

import numpy as np
import pytest

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, decode_b64_audio, wav_base64
from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.schema import parse_job
from f5_worker.synthesis.script import resolve_script, script_of
from f5_worker.text.markup import Pause, PauseRules

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


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

    action = worker.synthesis
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


@pytest.mark.parametrize("stream", [False, True])
def test_a_hash_after_a_tag_on_its_line_is_said_and_a_heading_after_a_line_break_is_not(worker, monkeypatch, stream):
    """A markdown heading's marks stand at the start of a line. A part of the script after a tag starts its own
    text but no line: "Press [pause] # to continue" was said "Press … to continue", its "#" left out."""
    monkeypatch.setattr(worker, "settings", dataclasses.replace(worker.settings, streaming=True))
    text = "Press [pause:0.2s] # to continue. [pause:0.2s]\n# Next step\nDone."
    out = run(worker, text=text, seed=3, word_timings=False, caption_formats=[], stream=stream)
    done = out[-1] if stream else out
    assert done["normalized_text"].split() == "Press hash to continue. Next step Done.".split(), done


def test_the_language_is_guessed_from_the_words_not_from_the_tags(worker):
    """A Chinese text with its tags has more Latin letters in the tags than Chinese characters in the text."""
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


def test_each_voice_given_as_audio_has_its_own_label_and_the_same_audio_keeps_one():
    """Labels are decided from the request alone: the same URL or base64 string is one voice; a label a
    stored voice of the script has is skipped."""

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
    w.engine.on_queued = queued.append  # this worker's own engine: records what it is handed

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


# -- bounds: parts counted --------------------------------------------------------------------------


def test_parts_made_by_tags_are_bounded_like_segments(worker):
    """``MAX_SEGMENTS`` bounded segments only: "a[pause:0s]" × 454 was sampled, 454 references in one call."""
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
