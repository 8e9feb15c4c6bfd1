"""Caption files: grouping by layout, karaoke timing, and every format parsing back."""

from __future__ import annotations

import csv
import io
import json
import re

import pysubs2
import pytest
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from f5_worker.captions import CaptionLayout, as_reported, group_cues, render_captions
from f5_worker.limits import CAPTION_FORMATS
from f5_worker.timed_text import TimedSpan


def timed(text: str, step: float = 0.3, gap: float = 0.05, pauses: dict[int, float] | None = None) -> list[TimedSpan]:
    words, t, pos = [], 0.2, 0
    for i, w in enumerate(text.split()):
        t += (pauses or {}).get(i, 0.0)
        pos = text.index(w, pos)
        words.append(TimedSpan(w, t, t + step, 0.9, pos, pos + len(w)))
        pos += len(w)
        t += step + gap
    return words


TEXT = "Some call me nature, others call me mother nature. Yes! The quick brown fox jumps over the lazy dog again and again."


def test_all_formats_parse_back():
    words = timed(TEXT)
    duration = words[-1].end + 0.5
    out = render_captions(words, list(CAPTION_FORMATS), CaptionLayout(), duration=duration)
    assert set(out) == set(CAPTION_FORMATS)
    srt = pysubs2.SSAFile.from_string(out["srt"], format_="srt")
    ass = pysubs2.SSAFile.from_string(out["ass"], format_="ass")
    vtt = webvtt.from_buffer(io.StringIO(out["vtt"]))
    assert len(srt) == len(ass) == len(vtt) >= 3
    assert " ".join(e.plaintext.replace("\n", " ") for e in srt) == TEXT
    assert " ".join(re.sub(r"<[^>]+>", "", c.text).replace("\n", " ") for c in vtt) == TEXT
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [r["word"] for r in rows] == TEXT.split()
    assert float(rows[1]["start"]) == pytest.approx(words[1].start, abs=1e-3)
    cues = json.loads(out["json"])["cues"]
    assert [w["word"] for c in cues for w in c["words"]] == TEXT.split()


def test_vtt_has_a_timestamp_per_word_and_ass_karaoke_adds_up():
    words = timed("one two three four")
    out = render_captions(words, ["vtt", "ass"], CaptionLayout(), duration=3.0)
    stamps = re.findall(r"<(\d\d:\d\d:\d\d\.\d{3})>", out["vtt"])
    assert stamps == ["00:00:00.550", "00:00:00.900", "00:00:01.250"]
    (event,) = pysubs2.SSAFile.from_string(out["ass"]).events
    ks = [int(k) for k in re.findall(r"\\k(\d+)", event.text)]
    assert ks == [35, 35, 35, 30]
    assert sum(ks) * 10 == pytest.approx(event.end - event.start, abs=10)


def test_cues_break_at_sentences_pauses_and_layout():
    cues = group_cues(timed("Hello there. General Kenobi"), CaptionLayout())
    assert [len(c.words) for c in cues] == [2, 2]
    cues = group_cues(timed("one two three four", pauses={2: 1.0}), CaptionLayout())
    assert [len(c.words) for c in cues] == [2, 2]
    layout = CaptionLayout(max_chars_per_line=10, max_lines=1)
    cues = group_cues(timed("alpha beta gamma delta epsilon"), layout)
    assert all(len(line) <= 10 for c in cues for line in c.lines)
    assert all(len(c.lines) == 1 for c in cues)
    cues = group_cues(timed(" ".join(["word"] * 40), step=0.5), CaptionLayout(max_chars_per_line=200, max_lines=3))
    assert all(c.end - c.start <= 6.0 for c in cues)


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unknown caption format"):
        render_captions(timed("hi"), ["docx"], CaptionLayout(), duration=1.0)


_TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Co", "Cn")), min_size=1, max_size=10)


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(_TOKEN, min_size=0, max_size=25),
    durations=st.lists(st.floats(0.0, 1.5), min_size=25, max_size=25),
    gaps=st.lists(st.floats(0.0, 1.0), min_size=25, max_size=25),
    width=st.integers(5, 60),
    lines=st.integers(1, 3),
)
def test_any_words_give_parseable_captions_with_each_word_once(tokens, durations, gaps, width, lines):
    words, t, pos = [], 0.0, 0
    for i, tok in enumerate(tokens):
        t += gaps[i]
        words.append(TimedSpan(tok, t, t + durations[i], 0.5, pos, pos + len(tok)))
        t += durations[i]
        pos += len(tok) + 1
    duration = (words[-1].end if words else 0.0) + 0.1
    layout = CaptionLayout(max_chars_per_line=width, max_lines=lines)
    reported = as_reported(words, duration)  # what render_captions groups
    cues = group_cues(reported, layout)
    assert [w for c in cues for w in c.words] == reported
    out = render_captions(words, list(CAPTION_FORMATS), layout, duration=duration)
    srt = pysubs2.SSAFile.from_string(out["srt"], format_="srt")
    ass = pysubs2.SSAFile.from_string(out["ass"], format_="ass")
    vtt = webvtt.from_buffer(io.StringIO(out["vtt"]))
    assert len(ass) == len(cues) == len(vtt)
    assert len(srt) <= len(cues)  # pysubs2 drops SRT cues whose text is only markup-like
    assert [r["word"] for r in csv.DictReader(io.StringIO(out["csv"]))] == tokens
    assert [w["word"] for c in json.loads(out["json"])["cues"] for w in c["words"]] == tokens
    for c in cues:
        assert 0.0 <= c.start <= c.end <= duration


# --- found by a review: each of these failed on the earlier writers ------------------------------------

def spans(text: str, times: list[tuple[float, float]]) -> list[TimedSpan]:
    """Words of ``text`` split as the aligner splits them (whitespace; CJK characters are words)."""
    tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"[\u4e00-\u9fff][，。！？]?|[^\s\u4e00-\u9fff]+", text)]
    assert len(tokens) == len(times)
    return [TimedSpan(t, s, e, 0.9, a, b) for (t, a, b), (s, e) in zip(tokens, times)]


def test_braces_and_backslashes_in_words_stay_text_in_srt_and_ass():
    text = r"Type {b} or C:\new\Notes then \h and {\i1}x"
    words = spans(text, [(i * 0.4, i * 0.4 + 0.3) for i in range(8)])
    out = render_captions(words, ["srt", "ass"], CaptionLayout(max_chars_per_line=80, max_lines=1), duration=5.0)
    srt_lines = out["srt"].split("\n")
    assert srt_lines[2].replace("\u2060", "") == text  # as written: no tag eaten, no line break, no space made
    assert srt_lines[3] == ""  # one line
    ass_event = pysubs2.SSAFile.from_string(out["ass"])[0]
    assert "\n" not in ass_event.plaintext and "\\N" not in ass_event.text.replace("\\\u2060N", "")
    assert re.sub(r"\{\\k\d+\}", "", ass_event.text).replace("\u2060", "") == text.replace("{", "(").replace("}", ")")


def test_cjk_captions_keep_the_text_without_invented_spaces():
    text = "你好，世界。 Hello 你们"
    words = spans(text, [(i * 0.3, i * 0.3 + 0.25) for i in range(7)])
    out = render_captions(words, ["json", "srt", "vtt"], CaptionLayout(), duration=3.0)
    assert json.loads(out["json"])["cues"][0]["lines"] == ["你好，世界。"]
    assert json.loads(out["json"])["cues"][1]["lines"] == ["Hello 你们"]
    assert "你好，世界。" in out["srt"]
    narrow = render_captions(words[:4], ["json"], CaptionLayout(max_chars_per_line=3, max_lines=4), duration=3.0)
    assert json.loads(narrow["json"])["cues"][0]["lines"] == ["你好，", "世界。"]  # wrapped, lines of <= 3


def test_punctuation_alone_never_opens_a_line_past_max_lines():
    words = spans("Mother nature... —", [(0.0, 0.4), (0.5, 1.0), (1.0, 1.0)])
    cues = json.loads(render_captions(words, ["json"], CaptionLayout(max_chars_per_line=10, max_lines=1),
                                      duration=1.2)["json"])["cues"]
    assert all(len(c["lines"]) <= 1 for c in cues)
    assert cues[-1]["lines"] == ["nature... —"]  # glued to its line, over the width, rather than a line more


def test_vtt_inline_timestamps_lie_strictly_inside_their_cue():
    words = spans("Mother nature... —", [(0.0, 0.4), (0.5, 1.03), (1.03, 1.03)])
    vtt = render_captions(words, ["vtt"], CaptionLayout(), duration=1.2)["vtt"]
    for cue in webvtt.from_buffer(io.StringIO(vtt)):
        for stamp in re.findall(r"<(\d\d:\d\d:\d\d\.\d\d\d)>", cue.raw_text):
            assert cue.start < stamp < cue.end


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12))
def test_ass_karaoke_tags_add_up_to_the_cue_as_written(gaps_ms):
    """Times off the 10 ms grid (the estimate aligner's): each tag rounded alone used to miss by 1 cs."""
    times, t = [], 0.0
    for gap in gaps_ms:
        times.append((t + 0.0013, t + gap / 1000 * 0.8 + 0.0013))
        t += gap / 1000
    words = spans(" ".join(f"w{i}" for i in range(len(times))), times)
    ass = render_captions(words, ["ass"], CaptionLayout(max_chars_per_line=200, max_lines=4,
                                                         max_caption_seconds=30), duration=t + 1)["ass"]
    for event in pysubs2.SSAFile.from_string(ass):
        tags = [int(k) for k in re.findall(r"\\k(\d+)", event.text)]
        assert sum(tags) == round((event.end - event.start) / 10)


def test_caption_times_are_the_words_times_rounded_down_like_the_words():
    words = spans("Some call me", [(0.0004, 0.3006), (0.4007, 0.9219), (0.9219, 4.2119676)])
    out = render_captions(words, ["json", "csv"], CaptionLayout(), duration=4.2119676)
    cue = json.loads(out["json"])["cues"][0]
    assert cue["start"] == cue["words"][0]["start"] == 0.0
    assert cue["end"] == 4.211 <= 4.2119676
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [float(r["start"]) for r in rows] == [w["start"] for w in cue["words"]]


WIDE = CaptionLayout(max_chars_per_line=200, max_lines=4, max_caption_seconds=1000)


def cue_texts(text: str, layout: CaptionLayout = WIDE) -> list[str]:
    return [" ".join(w.text for w in cue.words) for cue in group_cues(timed(text), layout)]


def test_abbreviations_and_initials_do_not_end_a_cue():
    assert cue_texts("Dr. Smith paid Mr. Jones at St. Mary's, e.g. on Monday. Then J. R. Tolkien left.") == \
        ["Dr. Smith paid Mr. Jones at St. Mary's, e.g. on Monday.", "Then J. R. Tolkien left."]
    assert cue_texts("(Dr. Who) met Prof. Xavier. It cost approx. 5 dollars, i.e. nothing. Sure.") == \
        ["(Dr. Who) met Prof. Xavier.", "It cost approx. 5 dollars, i.e. nothing.", "Sure."]
    # a period before a lowercase word ends nothing; one before a capital, outside an abbreviation, does
    assert cue_texts("Martin Luther King Jr. was born in 1929. He spoke.") == \
        ["Martin Luther King Jr. was born in 1929.", "He spoke."]
    assert cue_texts("Wait... What? \"Go.\" Now!") == ["Wait...", "What?", "\"Go.\"", "Now!"]


ABBREVIATED = ["Dr.", "Mr.", "Mrs.", "St.", "Prof.", "e.g.", "i.e.", "vs.", "J."]
PLAIN = ["Smith", "paid", "the", "bill", "Jones", "42", "(Mary's"]
ENDS = ["today.", "now!", "why?", "gone.\"", "(fine.)"]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(ABBREVIATED + PLAIN + ENDS), min_size=1, max_size=30))
def test_cues_end_only_at_sentence_ends(tokens):
    """With room to spare and no pauses, a cue ends exactly where a sentence does: after ! or ?, or after a
    period outside an abbreviation that is followed by neither a lowercase word nor a number."""
    def boundary(i: int) -> bool:
        word, following = tokens[i], tokens[i + 1].lstrip("(\"")
        if word not in ENDS:
            return False
        return not word.rstrip(")\"").endswith(".") or not (following[0].islower() or following[0].isdigit())

    expected = sum(boundary(i) for i in range(len(tokens) - 1)) + 1
    cues = group_cues(timed(" ".join(tokens)), WIDE)
    assert len(cues) == expected
    assert all(cue.words[-1].text not in ABBREVIATED for cue in cues[:-1])


# --- speakers: words that carry voices -----------------------------------------------------------------

def voiced(parts: list[tuple[str, str]], step: float = 0.3) -> list[TimedSpan]:
    """Words of several speakers, in order: (voice, text) per part."""
    words, t, pos = [], 0.0, 0
    for segment, (voice, text) in enumerate(parts):
        for w in text.split():
            words.append(TimedSpan(w, t, t + step - 0.05, 0.9, pos, pos + len(w), voice=voice, segment=segment))
            t += step
            pos += len(w) + 1
    return words


DIALOGUE = [("Ann", "Hello there"), ("Bob", "Hi Ann how are you"), ("Ann", "fine thanks")]


def test_a_cue_never_holds_two_voices():
    words = voiced(DIALOGUE)
    cues = group_cues(words, WIDE)
    assert [(c.voice, " ".join(w.text for w in c.words)) for c in cues] == \
        [("Ann", "Hello there"), ("Bob", "Hi Ann how are you"), ("Ann", "fine thanks")]
    cues = json.loads(render_captions(words, ["json"], WIDE, duration=5.0)["json"])["cues"]
    assert [c["voice"] for c in cues] == ["Ann", "Bob", "Ann"]
    assert cues[0]["words"][0]["voice"] == "Ann" and cues[0]["words"][0]["segment"] == 0


def test_two_segments_in_one_voice_are_two_turns_never_glued_together():
    """``segments`` offsets index each segment's own text: the second turn's first word starts at 0."""
    words = []
    for segment, (start, text) in enumerate([(0.0, "Hello there my friend"), (1.2, "and you over there")]):
        pos = 0
        for n, w in enumerate(text.split()):
            words.append(TimedSpan(w, start + 0.25 * n, start + 0.25 * n + 0.2, 0.9, pos, pos + len(w),
                                   voice="ref", segment=segment))
            pos += len(w) + 1
    cues = group_cues(words, WIDE)
    assert [c.lines for c in cues] == [["Hello there my friend"], ["and you over there"]]
    vtt = list(webvtt.from_buffer(io.StringIO(render_captions(words, ["vtt"], WIDE, duration=3.0)["vtt"])))
    assert [c.text for c in vtt] == ["Hello there my friend", "and you over there"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y z", "w. v", "u v t s r"])),
                min_size=1, max_size=10),
       st.integers(5, 40))
def test_no_cue_spans_two_voices_whatever_the_layout(parts, width):
    words = voiced(parts)
    cues = group_cues(words, CaptionLayout(max_chars_per_line=width, max_lines=1))
    assert [w for c in cues for w in c.words] == words
    assert all(len({w.voice for w in c.words}) == 1 for c in cues)


def test_vtt_voice_spans_ass_styles_and_srt_prefix_name_the_speaker():
    words = voiced(DIALOGUE)
    out = render_captions(words, ["vtt", "ass", "srt", "csv"], WIDE, duration=5.0)
    vtt = list(webvtt.from_buffer(io.StringIO(out["vtt"])))
    assert [c.voice for c in vtt] == ["Ann", "Bob", "Ann"]
    assert [c.text for c in vtt] == ["Hello there", "Hi Ann how are you", "fine thanks"]
    ass = pysubs2.SSAFile.from_string(out["ass"])
    assert {"Ann", "Bob"} <= set(ass.styles)
    assert [(e.style, e.name) for e in ass] == [("Ann", "Ann"), ("Bob", "Bob"), ("Ann", "Ann")]
    assert [e.plaintext for e in pysubs2.SSAFile.from_string(out["srt"], format_="srt")] == \
        ["Ann: Hello there", "Bob: Hi Ann how are you", "Ann: fine thanks"]
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [r["voice"] for r in rows][:3] == ["Ann", "Ann", "Bob"]
    bare = render_captions(words, ["srt"], WIDE, duration=5.0, speaker_prefix=False)["srt"]
    assert [e.plaintext for e in pysubs2.SSAFile.from_string(bare, format_="srt")] == \
        ["Hello there", "Hi Ann how are you", "fine thanks"]


def test_srt_names_a_speaker_only_when_the_speaker_changes():
    words = voiced([("Ann", "One. Two. Three."), ("Bob", "Four.")])
    srt = render_captions(words, ["srt"], WIDE, duration=5.0)["srt"]
    assert [e.plaintext for e in pysubs2.SSAFile.from_string(srt, format_="srt")] == \
        ["Ann: One.", "Two.", "Three.", "Bob: Four."]


def test_voice_names_are_escaped_in_each_format():
    import html

    odd = "<Dr. A & B>, {the} \\N one"
    words = voiced([(odd, "Hello there"), ("Ann, Jr.", "Hi"), ("Ann， Jr.", "Bye")])
    out = render_captions(words, ["vtt", "ass", "srt", "json"], WIDE, duration=5.0)
    vtt = list(webvtt.from_buffer(io.StringIO(out["vtt"])))
    assert html.unescape(vtt[0].voice) == odd
    assert vtt[0].text == "Hello there"
    ass = pysubs2.SSAFile.from_string(out["ass"])
    names = [e.name for e in ass]
    assert len(set(names)) == 3 and all("," not in n for n in names)  # a comma would end the field
    assert [e.style for e in ass] == names and set(names) <= set(ass.styles)
    assert [e.plaintext for e in ass] == ["Hello there", "Hi", "Bye"]
    first_srt = pysubs2.SSAFile.from_string(out["srt"], format_="srt")[0]
    assert first_srt.plaintext.replace("\u2060", "") == "‹Dr. A & B›, (the) \\N one: Hello there"
    assert json.loads(out["json"])["cues"][0]["voice"] == odd


def test_without_voices_the_output_is_unchanged():
    words = timed(TEXT)
    out = render_captions(words, list(CAPTION_FORMATS), CaptionLayout(), duration=words[-1].end + 0.5)
    assert "<v" not in out["vtt"] and "voice" not in out["json"] and out["csv"].startswith("word,start,end,confidence\n")
    assert set(pysubs2.SSAFile.from_string(out["ass"]).styles) == {"Default"}
