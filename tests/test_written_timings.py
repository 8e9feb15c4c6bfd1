"""Timings aligned on the text as said, turned into timings of the words and characters as written
(``text.written_timings``): a rewritten word is timed over its reading, a reading over several written
words is shared among them, and every written word is timed once, in order."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from text_samples import LANGUAGES, TEXTS

from f5_worker.text.normalize import normalize
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.tokens import token_spans
from f5_worker.text.written_timings import written_timings
from f5_worker.timed_text import TimedSpan


def spoken_timings(norm: NormalizedText, step: float = 0.2) -> tuple[list[TimedSpan], list[TimedSpan]]:
    """Timings an aligner could give on the spoken text: each token after the other, its characters
    sharing its time."""
    words, chars, t = [], [], 0.0
    for s, e in token_spans(norm.spoken):
        words.append(TimedSpan(norm.spoken[s:e], t, t + step, 0.5 + (s % 5) / 10, s, e))
        for i, p in enumerate(range(s, e)):
            share = step / (e - s)
            chars.append(TimedSpan(norm.spoken[p], t + i * share, t + (i + 1) * share, 0.8, p, p + 1, "char"))
        t += step + 0.05
    return words, chars


def test_a_rewritten_word_is_one_written_word_timed_over_its_reading():
    norm = normalize("I paid $4.99 today", "en")
    words, chars = spoken_timings(norm)
    out_words, out_chars = written_timings(norm, words, chars)
    assert [w.text for w in out_words] == ["I", "paid", "$4.99", "today"]
    four = next(w for w in words if w.text == "four")
    cents = next(w for w in words if w.text == "cents")
    amount = out_words[2]
    assert (amount.char_start, amount.char_end) == (7, 12)
    assert (amount.start, amount.end) == (four.start, cents.end)
    assert amount.confidence == min(w.confidence for w in words[2:6])
    assert (out_words[3].start, out_words[3].end) == (words[-1].start, words[-1].end)  # unchanged word, exact
    dollar_chars = [c for c in out_chars if 7 <= c.char_start < 12]
    assert "".join(c.text for c in dollar_chars) == "$4.99"
    assert dollar_chars[0].start == four.start and dollar_chars[-1].end == pytest.approx(cents.end)
    lengths = [c.end - c.start for c in dollar_chars]
    assert max(lengths) == pytest.approx(min(lengths))  # spread evenly
    today_chars = [c for c in out_chars if c.char_start >= 13]
    assert [(c.start, c.end) for c in today_chars] == [(c.start, c.end) for c in chars[-5:]]


def test_a_reading_over_several_written_words_is_shared_among_them():
    norm = normalize("Call +1 555-123-4567 now", "en")
    words, chars = spoken_timings(norm)
    out_words, _ = written_timings(norm, words, chars)
    assert [w.text for w in out_words] == ["Call", "+1", "555-123-4567", "now"]
    assert out_words[1].end <= out_words[2].start
    assert out_words[1].start == words[1].start  # "plus"


def test_a_range_is_one_written_word_timed_from_its_first_number_to_its_last():
    """"5-10" is said "five to ten": one written word, from the start of "five" to the end of "ten"; a unit
    written apart ("°C") keeps its own reading and time."""
    norm = normalize("Wait 5-10 minutes at 20-25 °C.", "en")
    assert norm.spoken == "Wait five to ten minutes at twenty to twenty-five degrees Celsius."
    words, chars = spoken_timings(norm)
    out_words, _ = written_timings(norm, words, chars)
    assert [w.text for w in out_words] == ["Wait", "5-10", "minutes", "at", "20-25", "°C."]
    by_text = {w.text: w for w in words}
    assert (out_words[1].start, out_words[1].end) == (by_text["five"].start, by_text["ten"].end)
    assert (out_words[4].start, out_words[4].end) == (by_text["twenty"].start, by_text["twenty-five"].end)
    assert (out_words[5].start, out_words[5].end) == (by_text["degrees"].start, by_text["Celsius."].end)


def test_voice_and_segment_follow_the_words():
    norm = normalize("Pay $5", "en")
    words, chars = spoken_timings(norm)
    words = [TimedSpan(w.text, w.start, w.end, w.confidence, w.char_start, w.char_end, voice="ann", segment=2)
             for w in words]
    out_words, out_chars = written_timings(norm, words, chars)
    assert {(w.voice, w.segment) for w in out_words} == {("ann", 2)}
    assert out_words[1].to_dict()["voice"] == "ann" and out_words[1].to_dict()["segment"] == 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, language=LANGUAGES)
@example(text="㐀@$A", language="en")
def test_written_timings_cover_every_written_word_once_in_order(text, language):
    norm = normalize(text, language)
    words, chars = spoken_timings(norm)
    out_words, out_chars = written_timings(norm, words, chars)
    assert [(w.char_start, w.char_end) for w in out_words] == token_spans(text)
    assert [w.text for w in out_words] == [text[s:e] for s, e in token_spans(text)]
    starts = [w.start for w in out_words]
    assert starts == sorted(starts)
    assert all(w.start <= w.end for w in out_words)
    assert [c.char_start for c in out_chars] == [p for s, e in token_spans(text) for p in range(s, e)]
    assert all(c.start <= c.end for c in out_chars)
    char_starts = [c.start for c in out_chars]
    assert char_starts == sorted(char_starts)
    touched = {p for r in norm.rewrites for p in range(r.written_start, r.written_end)}
    spoken_by_start = {w.char_start: w for w in words}
    for w in out_words:
        same = spoken_by_start.get(_spoken_start(norm, w.char_start))
        # An untouched word said as one spoken word of its own keeps that word's timings. (In "㐀@$A" the
        # "A" is untouched, yet said inside "$A": a CJK character takes the marks after it, "㐀@$", while
        # the spoken "㐀 at $A" splits them off.)
        if not touched & set(range(w.char_start, w.char_end)) and same is not None:
            assert (w.text, w.start, w.end) == (same.text, same.start, same.end)


def _spoken_start(norm: NormalizedText, written_pos: int) -> int:
    shift = 0
    for r in norm.rewrites:
        if r.written_end > written_pos:
            break
        shift = r.spoken_end - r.written_end
    return written_pos + shift


def test_each_written_word_of_a_shared_reading_gets_the_part_its_characters_are_of_it():
    """French reads "12 345,67 €" as one amount over three written words: each gets the stretch of the
    reading's time that its characters take of the 11 written, "12" the first 2/11, "€" the last 1/11."""
    norm = normalize("Il paie 12 345,67 € demain", "fr")
    words, chars = spoken_timings(norm)
    out_words, _ = written_timings(norm, words, chars)
    assert [w.text for w in out_words] == ["Il", "paie", "12", "345,67", "€", "demain"]
    reading = [w for w in words if 8 <= w.char_start < 73]  # "douze" .. "centimes"
    first, last = reading[0].start, reading[-1].end
    at = [first + (last - first) * k / 11 for k in (0, 2, 3, 9, 10, 11)]
    assert [t for w in out_words[2:5] for t in (w.start, w.end)] == pytest.approx(at)


def test_a_flagged_spoken_word_flags_only_the_written_words_it_was_said_for():
    """Written words may touch (a CJK character is a word of its own): the one after a flagged word starts
    where the flagged one ends, and is not flagged with it."""
    from f5_worker.text.normalize import normalize
    from f5_worker.text.written_timings import written_flagged
    from f5_worker.timed_text import Alignment, TimedSpan

    said = normalize("你好世界", "zh")
    words = [TimedSpan(c, i * 0.2, i * 0.2 + 0.2, 0.9, i, i + 1) for i, c in enumerate(said.spoken)]
    for flagged in ([0], [1], [3], [1, 2]):
        found = Alignment(words, [], 0.9, "sphinx", False, flagged_words=flagged)
        assert written_flagged(said, found, words) == flagged
