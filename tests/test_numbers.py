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


def test_numbers_are_said_in_full_up_to_15_digits_then_digit_by_digit():
    assert "trillion" in spoken_words("999999999999999")
    assert spoken_words("1234567890123456") == "one two three four five six seven eight nine zero one two three four " \
                                               "five six".split()


@settings(max_examples=60, deadline=None)
@given(digits=st.from_regex(r"\A0\d{1,11}\Z"), language=st.sampled_from(["en", "fr", "de", "es", "it", "pt"]))
@example(digits="05", language="en")
def test_a_number_with_a_leading_zero_is_read_digit_by_digit(digits, language):
    """A post code, a PIN, a room "05": every digit is said, the zeros too, as one word each."""
    from f5_worker.text.normalize import normalize
    from f5_worker.text.numbers import number_words

    said = normalize(f"Code {digits} ok", language).spoken
    assert said == "Code " + " ".join(number_words(d, language) for d in digits) + " ok"


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "$4.5", "four dollars fifty cents"), ("en", "£0.5", "fifty pence"),
    ("fr", "4,5 €", "quatre euros cinquante centimes"), ("de", "4,5 €", "vier Euro fünfzig Cent"),
])
def test_one_decimal_of_money_is_tenths_not_hundredths(language, written, spoken):
    """"$4.5" is four dollars and fifty cents, not five."""
    from f5_worker.text.normalize import normalize

    assert normalize(written, language).spoken == spoken
