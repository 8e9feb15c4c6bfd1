"""One pass of the rewrite rules over a text (``text.rewrite_scan``): edits in order and apart, none starting
inside a word, the earlier rule winning where two could start at the same place."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from text_samples import LANGUAGES, TEXTS

from f5_worker.text.languages import RULES
from f5_worker.text.numbers import base_language, num2words_knows
from f5_worker.text.rewrite_scan import scan
from f5_worker.text.tokens import CJK

CJK_CHAR = re.compile(f"[{CJK}]")


def scanned(text: str, language: str) -> list[tuple[int, int, str]]:
    lang = base_language(language)
    return scan(text, RULES.get(lang), lang)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, language=LANGUAGES)
@example(text="F5-TTS-GPT and GPT-4-TTS", language="en")  # spelled acronyms take in the hyphens beside them
@example(text="$5-TTS 3.14.15", language="en")
@example(text="Awww.example.com xhttps://a.io", language="en")  # an address inside a word is none
def test_edits_are_in_order_apart_and_never_start_inside_a_word(text, language):
    lang = base_language(language)
    if RULES.get(lang) is None and not num2words_knows(lang):
        return  # text.normalize leaves such a language's text as it is, without a scan
    edits = scanned(text, language)
    end = 0
    for start, stop, said in edits:
        assert end <= start < stop <= len(text), edits
        assert said, edits
        end = stop
        before, first = text[start - 1:start], text[start]
        # a letter or digit after another starts no token, unless one of them is a CJK character
        assert not (before.isalnum() and first.isalnum()) or CJK_CHAR.match(before) or CJK_CHAR.match(first), \
            (text, edits)


@pytest.mark.parametrize(("language", "written"), [
    ("en", "Update to v1.2.3 now"), ("en", "Python3.11 or v2.0"), ("en", "build 2b.7.1"),
    ("de", "Version v1.2 heute"), ("ru", "версия v1.2"),
])
def test_a_number_glued_to_a_word_by_a_period_is_part_of_that_word(language, written):
    """Like "v2" or "abc123", "v1.2.3" is one token with a number glued to it: kept whole, never half read."""
    assert scanned(written, language) == []


def test_the_earlier_rule_wins_where_two_could_start_at_the_same_place():
    """"2024-03-15" is a date before it is a phone number (digit groups joined by hyphens, read digit by
    digit) or numbers: the date rule comes first in the rules' order."""
    (start, end, said), = scanned("On 2024-03-15 we met.", "en")
    assert (start, end) == (3, 13)
    assert said.startswith("March fifteenth")
