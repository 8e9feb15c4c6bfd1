"""What each rewrite rule recognises, per language: the regular expressions ``text.rewrite_rules`` matches,
built from the language's table (its separators, units, ordinal suffixes, titles, abbreviations, months)
and compiled once per language.

Kept apart from the rules, which say what is said for what these find: what is recognised can be read
(and changed) in one place, for every language at once.
"""

from __future__ import annotations

import re
from functools import lru_cache

from f5_worker.text.languages import EN, RULES
from f5_worker.text.tokens import CJK

_CURRENCY = "(R\\$|[$€£¥])"
_TOP_LEVEL_DOMAINS = ("com", "org", "net", "edu", "gov", "io", "ai", "dev", "info", "co", "uk", "us", "de",
                      "fr", "es", "it", "pt", "br", "eu", "ca", "ch", "nl", "be", "at")
_URL_CHARACTERS = r"[^\s<>\"'()\[\]{}]"
# English amounts of money written with a scale's letters: "$5k", "£1m", "$1.2B", "$3bn"
SCALE_SUFFIXES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
                  "b": "billion", "B": "billion", "bn": "billion", "T": "trillion", "tn": "trillion"}
# Writing systems without spaces between words: a number next to their characters still stands alone.
_ALONE_BEFORE = rf"(?<![^\W{CJK}])"  # not after a letter or digit (CJK characters aside)
_ALONE_AFTER = rf"(?![^\W{CJK}])"


# Said as nothing, in every language: pictographs (emoji, dingbats) and what joins or dresses them (the
# zero-width joiner, variation selectors, the keycap, skin tones, flag tags), and the invisible characters of
# typesetting (soft hyphen, zero-width space and non-joiner, direction marks, word joiner, byte order mark).
UNSAID = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u231A\u231B\u23E9-\u23FA"
                    "\uFE0E\uFE0F\u20E3\U000E0000-\U000E007F"
                    "\u00AD\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]+")
# The marks of a markdown heading, as text written by a language model comes: "# Title", "## Step 1".
# At the very start of a line: the space left after them is no heading's start ("# # x" has one heading mark).
MARKDOWN_HEADING = re.compile(r"^(#{1,6})(?=[ \t])", re.MULTILINE)
# An HTML character reference, as text taken from a web page keeps them: "&amp;", "&#8212;", "&#x1F600;".
# One escaped twice or more ("&amp;amp;", "&amp;nbsp;") is one reference, as what escaped it meant.
CHARACTER_REFERENCE = re.compile(r"&(?:amp;)*(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
# Letters and digits in another form than the plain one: fullwidth, mathematical (𝐁𝐨𝐥𝐝), ligatures (ﬁ).
STYLED = re.compile("[\uFB00-\uFB06\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A\U0001D400-\U0001D7FF]")
# A word of letters and digits with any combining marks it carries ("Cafe" and U+0301), CJK characters
# aside (each is a word of its own, and has no other form here).
MARKED_WORD = re.compile(f"(?:[^\\W_{CJK}]|[\u0300-\u036F\u1AB0-\u1AFF\u1DC0-\u1DFF\u20D0-\u20DC\uFE20-\uFE2F])+")


@lru_cache(maxsize=16)
def patterns(lang: str) -> dict[str, re.Pattern]:
    """The language's regular expressions, compiled once."""
    rules = RULES.get(lang)
    if rules is None:
        number = r"\d{1,3}(?:,\d{3})+(?!\d)(?![.,]\d)|\d+[.,]\d+|\d+"
    elif lang == "en":  # ".5" too, where no digit, letter or period is before it
        number = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|(?<![\w.])\.\d+"
    else:
        sep = re.escape(rules.thousands)
        dec = re.escape(rules.decimal)
        number = (rf"\d{{1,3}}(?:[{sep}]\d{{3}})+(?:{dec}\d+)?(?!\d)|\d+{dec}\d+|\d+\.(?!\d{{3}}(?!\d))\d+|\d+")
    # never the start of a longer number: "$1.2B" is no "$1" followed by ".2B"
    num = rf"(?:{number})(?!\.\d)"
    scale = (rf"(?:\s(million|billion|trillion)\b|({'|'.join(sorted(SCALE_SUFFIXES, key=len, reverse=True))})(?!\w))?"
             if lang == "en" else "()()")
    out = {
        "number": re.compile(rf"{_ALONE_BEFORE}({num}){_ALONE_AFTER}"),
        "version": re.compile(rf"{_ALONE_BEFORE}\d+(?:\.\d+){{2,}}{_ALONE_AFTER}"),
        # "$.50" too: fifty cents written without the dollars' zero
        "currency_before": re.compile(rf"(?<![^\W\d_]){_CURRENCY}(\s?)([-−]?)({num}|\.\d+(?!\.\d))"
                                      rf"{scale}{_ALONE_AFTER}"),
        "currency_after": re.compile(rf"{_ALONE_BEFORE}({num})(\s?){_CURRENCY}"),
        # an amount without its currency sign, the second end of a range that has one ("$5-10 million")
        "scaled": re.compile(rf"{_ALONE_BEFORE}({num}){scale}{_ALONE_AFTER}"),
        "percent": re.compile(rf"{_ALONE_BEFORE}({num})(\s?)%"),
        "url": re.compile(rf"(?:https?://|www\.){_URL_CHARACTERS}+", re.IGNORECASE),
        "domain": re.compile(rf"(?<![\w.])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{'|'.join(_TOP_LEVEL_DOMAINS)})"
                             rf"(?:/{_URL_CHARACTERS}*)?(?![\w@])", re.IGNORECASE),
        "email": re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
        "iso_date": re.compile(r"(?<!\w)(\d{4})-(\d{2})-(\d{2})(?![\w-])"),
        "numeric_date": re.compile(r"(?<!\w)(\d{1,2})([/.])(\d{1,2})\2(\d{4})(?!\w)"),
        # German "15.03.", "1.3.": a day and a month, each followed by its period (checked by the rule)
        "day_and_month": re.compile(r"(?<![\w.])(\d{1,2})\.(\d{1,2})\.(?![\w.])"),
        "phone": re.compile(r"(?<![\w+])(?:\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}"
                            r"|\(?\d{3}\)?[ .\-]?\d{3}[.\-]\d{4}|\d{2,4}(?:[.\-]\d{2,4}){2,4}"
                            # North America's "1-800-555-1234": a 1 before three groups
                            r"|1([.\-])\d{3}\1\d{3}\1\d{4})(?![\w]|[.,\-]\d)"),
        "time": re.compile(r"(?<!\w)([01]?\d|2[0-4])(?::([0-5]\d)|(?=\s?[AaPp]\.?[Mm]\b))(?!:\d)"
                           r"(?:(\s?)([AaPp])\.?[Mm]\.?(?!\w))?(?!\w)" if lang == "en" or rules is None else
                           r"(?<!\w)([01]?\d|2[0-4])(?:h|:(?=[0-5]\d))([0-5]\d)?(?!:\d)(?!\w)" if lang == "fr" else
                           # German full hours are written without minutes too: "1 Uhr"
                           # and with a period before the minutes, as German also writes them: "8.30 Uhr"
                           r"(?<!\w)([01]?\d|2[0-4])(?:(?::|\.(?=\d\d\s+Uhr\b))([0-5]\d)|(?=\s+Uhr\b))(?!:\d)(?!\w)"
                           r"(\s+Uhr\b)?"
                           if lang == "de" else
                           r"(?<!\w)([01]?\d|2[0-4]):([0-5]\d)(?!:\d)(?!\w)(\s+Uhr\b)?"),
        # "9:05:30", "1:30:00" (a duration or a clock with seconds), "10:30:15 pm"
        "hours_minutes_seconds": re.compile(
            rf"(?<![\w:.])(\d{{1,2}}):([0-5]\d):([0-5]\d(?:{re.escape((rules or EN).decimal)}\d+)?)(?!:|[.,]\d)"
            # English a.m./p.m., written apart or glued ("10:30:15pm"); German "Uhr"
            + (r"(?:(\s?)([AaPp])\.?[Mm]\.?(?!\w))?(?!\w)" if lang == "en" else
               r"(?!\w)(\s+Uhr\b)?" if lang == "de" else r"(?!\w)")),
        # "45:30": minutes and seconds where the minutes are past any hour of a clock (checked by the rule)
        "minutes_seconds": re.compile(r"(?<![\w:.])(\d{2}):([0-5]\d)(?![\w:]|[.,]\d)"),
        # card and account numbers: three groups or more of digits, the first of four to six, one space or
        # hyphen between each two (the same throughout); their length is checked by the rule
        "digit_groups": re.compile(r"(?<![\w+.\-])\d{4,6}([ \-])\d{3,6}(?:\1\d{3,6})*\1\d{1,6}(?![\w]|[.,\-]\d)"),
        "sign": re.compile(r"#(?=\d)"),
        "decade": re.compile(r"(?<!\w)(?:(1[1-9]\d0|20[0-9]0)|'(\d0))s(?!\w)"),
        "fraction": re.compile(r"(?<![\w/])(\d{1,2})/(\d{1,2})(?![\w/])"),
        # three years or more joined by hyphens or en dashes, the same throughout ("2019-2020-2021");
        # whether they increase is checked by the rule
        "year_list": re.compile(r"(?<![\w.,\-–])(?:1[1-9]\d\d|20\d\d)([-–])(?:1[1-9]\d\d|20\d\d)"
                                r"(?:\1(?:1[1-9]\d\d|20\d\d))+(?![\w\-–]|[.,]\d)"),
        "dotted_acronym": re.compile(r"(?<!\w)(?:[A-Z]\.){2,}(?!\w)"),
        "acronym": re.compile(r"(?<!\w)[A-Z]{2,}(?!\w|\.\w)"),
    }
    if rules is not None:
        units = sorted(rules.units, key=len, reverse=True)
        out["unit"] = re.compile(rf"(?<!\w)({num})(\s?)({'|'.join(map(re.escape, units))})(?![\w/°])")
        out["ordinal"] = re.compile(rf"(?<!\w)(\d+)({rules.ordinal_suffixes})(?!\w)",
                                    re.IGNORECASE if lang == "en" else 0)
        out["title"] = re.compile(_alternatives(rules.titles))
        out["abbreviation"] = re.compile(_alternatives(rules.abbreviations), re.IGNORECASE)
        # Month names as the language writes them ("may" is no month in English, "May" is).
        months = "|".join(rules.months)
        out["month"] = re.compile(rf"\b(?:{months})\.?,?\s+\Z")
        out["date_context"] = re.compile(
            rf"(?:\b(?:{months})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+|\b(?:{months}),?\s+"
            + (r"|\b(?i:in|since|from|until|by|of|year)\s+" if lang == "en" else "") + r")\Z")
        out["article"] = re.compile(r"\b(?:der|die|das|den|dem|am|im|zum|zur|vom|ab|bis)\s+\Z", re.IGNORECASE)
    return out


def _alternatives(words) -> str:
    """A regular expression for any of ``words`` standing alone, the longest first."""
    return r"(?<!\w)(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?!\w)"

