"""Split input text into reported words and turn each into the words actually spoken.

The words we report are the input's own whitespace-separated tokens, punctuation
attached, with character offsets into the input. The aligner needs what is
*said*: "$42.50" is "forty two dollars fifty cents", "3rd" is "third", "—" is
nothing. Each token therefore maps to zero or more spoken words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from unidecode import unidecode

from f5_worker.text.numbers import CURRENCY_NAMES, say_currency, say_number, say_ordinal

# Scripts written without spaces: each character is its own token.
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A CJK character keeps the punctuation that follows it ("好，"); other tokens run to whitespace.
_TOKEN_RE = re.compile(rf"[{CJK}][^\w\s{CJK}]*|[^\s{CJK}]+")

_SYMBOL_WORDS = {
    "&": "and", "%": "percent", "@": "at", "+": "plus", "=": "equals", "#": "number",
    "°": "degrees", "×": "times", "½": "one half", "¼": "one quarter", "¾": "three quarters",
}
# Titles read as words; the key is the token without its final period, lower-cased.
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor",
                  "jr": "junior", "sr": "senior", "vs": "versus", "etc": "et cetera", "st": "saint"}
_OTHER_READINGS = {"dr": "drive", "st": "street"}
_NUMBER_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_CURRENCY_RE = "(" + "|".join(map(re.escape, sorted(CURRENCY_NAMES["en"], key=len, reverse=True))) + ")"
_ORDINAL_RE = re.compile(r"^(\d+)(st|nd|rd|th)$", re.IGNORECASE)


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


def guess_language(text: str) -> str:
    """A language tag from the script the text is written in, for requests that do not say.

    Only scripts are told apart (kana: ja, hangul: ko, han: zh, cyrillic: ru, greek: el,
    arabic: ar); Latin-script text is taken as English.
    """
    counts = {"ja": 0, "ko": 0, "zh": 0, "ru": 0, "el": 0, "ar": 0, "en": 0}
    for ch in text:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF:
            counts["ja"] += 3  # kana only occurs in Japanese, which also uses han
        elif 0xAC00 <= o <= 0xD7AF:
            counts["ko"] += 1
        elif 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF:
            counts["zh"] += 1
        elif 0x0400 <= o <= 0x04FF:
            counts["ru"] += 1
        elif 0x0370 <= o <= 0x03FF:
            counts["el"] += 1
        elif 0x0600 <= o <= 0x06FF:
            counts["ar"] += 1
        elif ch.isalpha():
            counts["en"] += 1
    if counts["ja"] and counts["zh"]:
        counts["ja"] += counts["zh"]
    best = max(counts, key=counts.get)
    return best if counts[best] else "en"


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


def spoken_words(token: str, language: str = "en", *, year_style: bool | None = None) -> list[str]:
    """Lower-case words spoken for ``token``; empty when it is silent (punctuation only)."""
    text = unicodedata.normalize("NFKC", token)
    lang = language.split("-")[0].lower() or "en"
    bare = text.strip("\"'“”‘’()[]{}«»,;:!?")
    if lang == "en" and bare.rstrip(".").lower() in _ABBREVIATIONS and bare.endswith("."):
        return _ABBREVIATIONS[bare.rstrip(".").lower()].split()
    ordinal = _ORDINAL_RE.match(text.strip(".,;:!?\"'()[]"))
    if ordinal:
        text = say_ordinal(ordinal.group(1), lang)
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
