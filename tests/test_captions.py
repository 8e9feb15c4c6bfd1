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

from f5_worker.alignment import TimedSpan
from f5_worker.captions import CAPTION_FORMATS, CaptionLayout, group_cues, render_captions


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
    cues = group_cues(words, layout)
    assert [w for c in cues for w in c.words] == words
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
