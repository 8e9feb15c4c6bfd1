"""The words a text is reported in, and the words said for each: what the aligner listens for.

The words we report are the input's own whitespace-separated tokens, punctuation attached, with character
offsets into the input (``token_spans``). The aligner needs what is *said*: "$42.50" is "forty two dollars
fifty cents", "3rd" is "third", "—" is nothing. Each token therefore maps to zero or more spoken words
(``tokenize``). Unlike the normalizer, which reads a whole text and weighs each word's neighbours, this
reads one token at a time, so that any text, normalized or not, can be aligned word by word; both take how
a word is said from the same tables (``text.languages``, ``text.numbers``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from unidecode import unidecode

from f5_worker.text.languages import EN, RULES
from f5_worker.text.numbers import (
    CURRENCY_NAMES,
    RANGE_DASHES,
    base_language,
    is_range,
    say_currency,
    say_number,
    say_ordinal,
)

# Writing systems without spaces between words: each character is its own token.
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A CJK character keeps the punctuation that follows it ("好，"); other tokens run to whitespace.
_TOKEN_RE = re.compile(rf"[{CJK}][^\w\s{CJK}]*|[^\s{CJK}]+")

# Symbols inside a token, said in English in every language. In a normalized text (what the model is given)
# the normalizer has said most of them already, in the language; a text aligned as written (the align
# action, or ``normalize`` off) reaches these. "#" is "hash" ("#", "#tag") and "number" before a digit
# ("#5"), as the normalizer reads it, so that both say one sign one way.
_SYMBOL_WORDS = {**EN.symbols, "%": EN.percent, "°": EN.units["°"][1], "×": EN.times}
_NUMBER_SIGN = re.compile(r"#(?=\d)")
# Per language, the abbreviations read as words (``LanguageRules.aligner_abbreviations``), by the token
# without its final period, lower-cased; and, in English, the other reading of a title ("St.": street).
_ABBREVIATIONS = {code: {key.rstrip(".").lower(): {**rules.titles, **rules.abbreviations}[key].lower()
                         for key in rules.aligner_abbreviations} for code, rules in RULES.items()}
_OTHER_READINGS = {key.rstrip(".").lower(): said.lower() for key, said in EN.street_readings.items()}
_NUMBER_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|(?<![\w.])\.\d+")  # as English writes them: "1,200.5", ".5"
_CURRENCY_RE = "(" + "|".join(map(re.escape, sorted(CURRENCY_NAMES["en"], key=len, reverse=True))) + ")"
_ORDINAL_RE = re.compile(rf"^(\d+)({EN.ordinal_suffixes})$", re.IGNORECASE)
# Two numbers joined by a dash, each with the currency sign and the first with the percent sign it may have
# ("5-10", "$5-$10", "10%-20%", "20-25°C"), and no part of a longer chain ("5-10-15", "1-800-FLOWERS"): a range
# where ``numbers.is_range`` says so. Only the dash is matched, the second number is looked at.
_RANGE_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_RANGE_RE = re.compile(
    rf"(?<![\w.,:/+{RANGE_DASHES}])(?:R\$|[$€£¥])?({_RANGE_NUMBER})%?([{RANGE_DASHES}])"
    rf"(?=(?:R\$|[$€£¥])?({_RANGE_NUMBER})(?!\d|[.,/:]\d|[{RANGE_DASHES}]\w))")


@dataclass
class Token:
    """One reported word: its text exactly as in the input and where it sits there."""

    text: str
    char_start: int
    char_end: int
    spoken: list[str] = field(default_factory=list)
    # Other ways the token may be read ("1564": fifteen sixty four / one thousand five hundred sixty four);
    # the aligner picks whichever the audio says.
    alternatives: list[list[str]] = field(default_factory=list)


def token_spans(text: str) -> list[tuple[int, int]]:
    """Where each reported word of ``text`` starts and ends: whitespace-separated, CJK characters alone."""
    return [m.span() for m in _TOKEN_RE.finditer(text)]


def tokenize(text: str, language: str = "en") -> list[Token]:
    """Tokens of ``text`` in order, each with the spoken words it stands for."""
    tokens = []
    for start, end in token_spans(text):
        word = text[start:end]
        spoken = spoken_words(word, language)
        tokens.append(Token(word, start, end, spoken, alternative_readings(word, language, spoken)))
    return tokens


def alternative_readings(token: str, language: str, spoken: list[str]) -> list[list[str]]:
    """Readings of ``token`` other than ``spoken`` that a speaker may well use (English only):
    four-digit numbers as years or cardinals, and "Dr."/"St." as drive/street."""
    if not language.lower().startswith("en"):
        return []
    if _RANGE_RE.search(token):  # "5-10": five to ten, or as the dash was once read, five ten
        other = spoken_words(token, language, ranges=False)
        return [other] if other != spoken else []
    bare = token.strip("\"'“”‘’()[]{}«»,;:!?").rstrip(".").lower()
    if token.rstrip(",;:!?\"')”’").endswith(".") and bare in _OTHER_READINGS:
        return [[_OTHER_READINGS[bare]]]
    if len(_NUMBER_RE.findall(token)) == 1 and re.search(r"(?<![\d,.])\d{4}(?![\d,.]\d)", token):
        other = spoken_words(token, language, year_style=not _reads_as_year(token))
        if other and other != spoken:
            return [other]
    return []


def _reads_as_year(token: str) -> bool:
    digits = re.search(r"\d{4}", token)
    return bool(digits) and 1100 <= int(digits.group()) <= 1999


def _say_number(digits: str, language: str, year_style: bool | None = None) -> str:
    """Words for a number as written in English style ("1,200.5"); a number with thousands
    separators is never a year."""
    return say_number(digits.replace(",", ""), language, False if "," in digits else year_style)


def spoken_words(token: str, language: str = "en", *, year_style: bool | None = None,
                 ranges: bool = True) -> list[str]:
    """Lower-case words spoken for ``token``; empty when it is silent (punctuation only). The dash of a range
    ("5-10") is the language's word for it, as the normalizer says it ("to", "à", "bis"), unless not ``ranges``."""
    text = unicodedata.normalize("NFKC", token)
    lang = base_language(language)
    if ranges and lang in RULES:
        text = _RANGE_RE.sub(lambda m: _range_dash(m, lang), text)
    bare = text.strip("\"'“”‘’()[]{}«»,;:!?")
    abbreviations = _ABBREVIATIONS.get(lang, {})
    if bare.endswith(".") and bare.rstrip(".").lower() in abbreviations:
        return abbreviations[bare.rstrip(".").lower()].split()
    ordinal = _ORDINAL_RE.match(text.strip(".,;:!?\"'()[]"))
    if ordinal:
        text = say_ordinal(ordinal.group(1), lang)
    text = _NUMBER_SIGN.sub(f" {EN.number_sign} ", text)
    text = re.sub(
        _CURRENCY_RE + r"(" + _NUMBER_RE.pattern + ")",
        lambda m: " " + say_currency(m.group(1), m.group(2).replace(",", ""), lang) + " ",
        text,
    )
    text = _NUMBER_RE.sub(lambda m: " " + _say_number(m.group(), lang, year_style) + " ", text)
    for symbol, word in _SYMBOL_WORDS.items():
        text = text.replace(symbol, f" {word} ")
    if lang == "en":
        text = unidecode(text)
    text = text.lower()
    # Apostrophes inside words stay ("don't"); everything else that is not a letter separates words.
    text = re.sub(r"[’‘`]", "'", text)
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", text)
    return words


def _range_dash(m: re.Match, language: str) -> str:
    """A range's first number and its dash, the dash said as the language's word ("to"), where the two
    numbers are a range (``numbers.is_range``)."""
    if not is_range(m[1].replace(",", ""), m[3].replace(",", ""), m[2], language):
        return m[0]
    return f"{m[0][:-1]} {RULES[language].range_to} "
