"""The per-language tables (``text.languages``): what they hold agrees with itself, and a text's language
is guessed from its writing system."""

from __future__ import annotations

import pytest

from f5_worker.text.languages import RULES, guess_language


def test_language_is_guessed_from_the_script():
    assert guess_language("Hello there") == "en"
    assert guess_language("你好，世界") == "zh"
    assert guess_language("こんにちは世界") == "ja"
    assert guess_language("안녕하세요") == "ko"
    assert guess_language("Привет, мир") == "ru"
    assert guess_language("Γειά σου κόσμε") == "el"
    assert guess_language("مرحبا بالعالم") == "ar"
    assert guess_language("42 !") == "en"


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_reading_the_aligner_or_a_street_takes_is_in_the_table(code):
    """The aligner's abbreviations and a title's street reading name entries of the same table, so a word
    has one reading per language, whoever says it."""
    rules = RULES[code]
    assert rules.aligner_abbreviations <= set(rules.titles) | set(rules.abbreviations)
    assert set(rules.street_readings) <= set(rules.titles)
