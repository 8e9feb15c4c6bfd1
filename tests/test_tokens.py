"""The reported words of a text and what the aligner listens for in each (``text.tokens``): the token as
written is kept, what is said for it comes from the language tables the normalizer reads too."""

from __future__ import annotations

import pytest

from f5_worker.text.languages import EN
from f5_worker.text.normalize import normalize
from f5_worker.text.tokens import spoken_words, token_spans, tokenize


@pytest.mark.parametrize(
    ("token", "spoken"),
    [
        ("$42.50", ["forty", "two", "dollars", "fifty", "cents"]),
        ("3rd", ["third"]),
        ("1999,", ["nineteen", "ninety", "nine"]),
        ("2021", ["two", "thousand", "twenty", "one"]),
        ("1,000", ["one", "thousand"]),
        ("3.14", ["three", "point", "one", "four"]),
        (".5", ["point", "five"]),
        ("$.99", ["ninety", "nine", "cents"]),
        ("$0.45", ["forty", "five", "cents"]),
        ("15%", ["fifteen", "percent"]),
        ("&", ["and"]),
        ("Dr.", ["doctor"]),
        ("don’t", ["don't"]),
        ("—", []),
        ("...", []),
        ("“naïve”", ["naive"]),
    ],
)
def test_normalization_for_alignment_keeps_the_original_word(token, spoken):
    (tok,) = tokenize(token)
    assert tok.text == token
    assert tok.spoken == spoken


def test_cjk_characters_are_separate_words():
    assert [t.text for t in tokenize("北京 hi")] == ["北", "京", "hi"]
    assert [t.text for t in tokenize("你好，世界。ok")] == ["你", "好，", "世", "界。", "ok"]


def test_other_readings_are_offered_for_years_and_abbreviations():
    (year,) = tokenize("1564,")
    assert year.spoken == ["fifteen", "sixty", "four"]
    assert year.alternatives == [["one", "thousand", "five", "hundred", "sixty", "four"]]
    (street,) = tokenize("St.")
    assert street.spoken == ["saint"] and street.alternatives == [["street"]]
    assert tokenize("$1999")[0].alternatives == []  # money is never read as a year
    assert tokenize("42")[0].alternatives == []


@pytest.mark.parametrize(("token", "spoken"), [
    ("#5", ["number", "five"]),
    ("#1,", ["number", "one"]),
    ("#", ["hash"]),
    ("#hashtag", ["hash", "hashtag"]),
    ("C#", ["c", "hash"]),
])
def test_the_number_sign_is_number_before_a_digit_and_hash_elsewhere(token, spoken):
    """As the normalizer says it: what the aligner listens for is what the model was given to say."""
    assert spoken_words(token) == spoken
    said = normalize(token, "en").spoken
    assert [w for s, e in token_spans(said) for w in spoken_words(said[s:e])] == spoken


def test_symbols_and_abbreviations_are_read_from_the_english_table():
    for symbol, word in EN.symbols.items():
        assert spoken_words(f"a{symbol}b") == ["a", word, "b"]
    assert spoken_words("50%") == ["fifty", EN.percent]
    assert spoken_words("3×4") == ["three", EN.times, "four"]
    for written in EN.aligner_abbreviations:
        said = {**EN.titles, **EN.abbreviations}[written].lower().split()
        assert spoken_words(written) == said and spoken_words(written.upper()) == said
    assert spoken_words("No.") == ["no"]  # not in aligner_abbreviations: alone, it may be the word
    assert spoken_words("Dr.", "fr") == ["dr"]  # French has no abbreviations the aligner reads


@pytest.mark.parametrize(("token", "language", "spoken", "alternatives"), [
    ("5-10", "en", ["five", "to", "ten"], [["five", "ten"]]),
    ("(10–20),", "en", ["ten", "to", "twenty"], [["ten", "twenty"]]),
    ("$5-$10", "en", ["five", "dollars", "to", "ten", "dollars"], [["five", "dollars", "ten", "dollars"]]),
    ("10%-20%", "en", ["ten", "percent", "to", "twenty", "percent"], [["ten", "percent", "twenty", "percent"]]),
    ("1990-95", "en", ["nineteen", "ninety", "to", "ninety", "five"], [["nineteen", "ninety", "ninety", "five"]]),
    ("5-10", "fr", ["cinq", "à", "dix"], []),
    ("5-10", "de", ["fünf", "bis", "zehn"], []),
    ("5-10", "es", ["cinco", "a", "diez"], []),
    ("5-10", "it", ["cinque", "a", "dieci"], []),
    ("5-10", "pt", ["cinco", "a", "dez"], []),
    # no range: the second no larger, a chain of hyphens, a local phone number, a code, a language without a table
    ("3-2", "en", ["three", "two"], []),
    ("5-10-15", "en", ["five", "ten", "fifteen"], []),
    ("1-800-FLOWERS", "en", ["one", "eight", "hundred", "flowers"], []),
    ("555-1234", "en", ["five", "hundred", "fifty", "five", "twelve", "thirty", "four"], []),
    ("A-1", "en", ["a", "one"], []),
    ("5-10", "ru", ["пять", "десять"], []),
])
def test_a_ranges_dash_is_said_as_the_languages_word(token, language, spoken, alternatives):
    """The aligner listens for "five to ten" in "5-10", as the normalizer has the model say it; in English it
    also takes "five ten", which a reader of the text as written may say."""
    (tok,) = tokenize(token, language)
    assert tok.spoken == spoken
    assert tok.alternatives == alternatives


@pytest.mark.parametrize("language", ["en", "fr", "de", "es", "it", "pt"])
@pytest.mark.parametrize("token", ["5-10", "10–20", "100-1000", "3-2"])
def test_a_range_is_listened_for_as_the_normalizer_says_it(token, language):
    """Read alone, a range token gives the words its normalized text gives: both decide by ``numbers.is_range``."""
    said = normalize(token, language).spoken
    assert [w for s, e in token_spans(said) for w in spoken_words(said[s:e], language)] == \
        spoken_words(token, language)
