"""Numbers, ordinals, years and money in words (``text.numbers``): every number a text holds is said in some
words, in any language, promptly, even where num2words raises, answers nothing or never answers. Checked
through the aligner's reading of a token (``text.tokens.spoken_words``), which hands each of these
functions whatever a text holds."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from f5_worker.text.tokens import spoken_words


@pytest.mark.parametrize(
    ("token", "language", "spoken"),
    [
        ("1111111", "am", ["አንድ"] * 7),  # num2words' Amharic converter loops forever on this number
        ("1999", "vi", ["một", "nghìn", "chín", "trăm", "chín", "mươi", "chín"]),  # no year form: the cardinal
        ("3rd", "xx", ["three"]),  # a language num2words does not know: English digits
        ("1" * 4301 + "th", "en", ["one"] * 4301),  # over int()'s 4300-digit limit: digit by digit
        ("$1." + "5" * 4301, "fr", ["un", "virgule", *["cinq"] * 4301, "dollars"]),  # past the cents: a number
    ],
)
def test_numbers_num2words_cannot_say_are_read_digit_by_digit(token, language, spoken):
    assert spoken_words(token, language) == spoken


def _num2words_languages() -> list[str]:
    from num2words import CONVERTER_CLASSES

    return sorted(CONVERTER_CLASSES)


_NUMBER_TOKENS = st.one_of(
    st.integers(0, 10**16).map(str),
    st.integers(0, 10**7).map(lambda n: f"{n:,}"),
    st.tuples(st.integers(0, 10**6), st.sampled_from(["st", "nd", "rd", "th"])).map(lambda t: f"{t[0]}{t[1]}"),
    st.tuples(st.sampled_from("$€£¥"), st.integers(0, 10**9), st.integers(0, 999)).map(lambda t: f"{t[0]}{t[1]}.{t[2]}"),
    st.from_regex(r"\A\d{1,40}(\.\d{1,6})?\Z"),
)


class TookTooLong(BaseException):
    """Not an Exception: code under test that catches every Exception cannot swallow it."""


@contextmanager
def answer_within(seconds: float, what: str):
    """SIGALRM for one call, so a loop that never ends fails that example (and each of hypothesis'
    shrinking runs); pytest-timeout's own alarm, on the same signal, is put back afterwards."""
    old_handler = signal.getsignal(signal.SIGALRM)
    old_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()

    def fire(*_):
        raise TookTooLong(f"no answer within {seconds} s for {what}")

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, old_delay - (time.monotonic() - started)))


@settings(max_examples=400, deadline=None)
@given(token=_NUMBER_TOKENS, language=st.sampled_from(_num2words_languages() + ["xx", "", "zh-Hant", "EN-gb"]))
@example(token="0st", language="ar")  # num2words answers "" for Arabic's ordinal of 0
def test_any_number_in_any_language_gives_words_promptly_without_raising(token, language):
    """Every number the text holds is said in some words; num2words' converters may raise or loop forever."""
    with answer_within(5.0, f"{token!r} in {language!r}"):
        words = spoken_words(token, language)
    assert words and all(isinstance(w, str) and w for w in words)
