"""Numbers, ordinals, years and money read in words: the one reading shared by the text synthesized
(``text.normalize``) and the aligner's idea of what is said (``text.tokens``).

num2words says the numbers in every language it knows. It raises for some languages' ordinals or years,
answers "" for a few, loops forever for others (Amharic from a million on), and Python refuses ``int()``
of over 4300 digits; every function here answers anyway, reading the digits one by one where the whole
cannot be said.
"""

from __future__ import annotations

import re
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

from f5_worker.text.languages import RULES

# Longer numbers are read digit by digit: nobody says a 16-digit number as one, and Python refuses
# int() of over 4300 digits.
MAX_NUMBER_WORDS_DIGITS = 15
# num2words languages whose converters loop forever on some numbers (Amharic: 1111111); their
# numbers are read digit by digit. tests/test_numbers.py sweeps every language for hangs.
_NUM2WORDS_HANGS = frozenset({"am"})
# The dashes that join the two ends of a range ("5-10", "5–10"), with no space around them: the hyphen, its
# Unicode forms, the figure dash and the en dash. An em dash, or a dash with spaces ("5 - 10"), is a pause.
RANGE_DASHES = "-\u2010\u2011\u2012\u2013"

# Money: (one, many, one hundredth, many hundredths) per currency symbol and language; English names
# where a language has no entry of its own. "R$" is the Brazilian real.
CURRENCY_NAMES: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "en": {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
           "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen"),
           "R$": ("real", "reais", "centavo", "centavos")},
    "fr": {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "centime", "centimes"),
           "£": ("livre", "livres", "penny", "pence"), "¥": ("yen", "yens", "sen", "sen")},
    "de": {"$": ("Dollar", "Dollar", "Cent", "Cent"), "€": ("Euro", "Euro", "Cent", "Cent"),
           "£": ("Pfund", "Pfund", "Penny", "Pence"), "¥": ("Yen", "Yen", "Sen", "Sen")},
    "es": {"$": ("dólar", "dólares", "centavo", "centavos"), "€": ("euro", "euros", "céntimo", "céntimos"),
           "£": ("libra", "libras", "penique", "peniques"), "¥": ("yen", "yenes", "sen", "sen")},
    "it": {"$": ("dollaro", "dollari", "centesimo", "centesimi"), "€": ("euro", "euro", "centesimo", "centesimi"),
           "£": ("sterlina", "sterline", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen")},
    "pt": {"$": ("dólar", "dólares", "centavo", "centavos"), "€": ("euro", "euros", "cêntimo", "cêntimos"),
           "£": ("libra", "libras", "pêni", "pence"), "¥": ("iene", "ienes", "sen", "sen"),
           "R$": ("real", "reais", "centavo", "centavos")},
}


def base_language(language: str) -> str:
    """``"pt-BR"``, ``"EN_us"`` -> ``"pt"``, ``"en"``; empty -> ``"en"``."""
    return language.replace("_", "-").split("-")[0].lower() or "en"


def num2words_knows(language: str) -> bool:
    return base_language(language) in CONVERTER_CLASSES


def digit_by_digit(digits: str, language: str) -> str:
    return " ".join(number_words(d, language) for d in digits if d.isdecimal())  # "²" is no digit int() reads


def number_words(digits: str, language: str, to: str = "cardinal") -> str:
    """num2words for a string of digits, never raising: where it cannot (a language without that
    form, a number too long, a converter bug), the digits are read one by one; failing that, in English."""
    language = base_language(language)
    if len(digits) > MAX_NUMBER_WORDS_DIGITS or (language in _NUM2WORDS_HANGS and len(digits) > 1):
        return digit_by_digit(digits, language)
    try:
        said = num2words(int(digits), lang=language, to=to)
        if said.strip():  # some converters answer "" (Arabic's ordinal of 0)
            return said
    except Exception:  # noqa: BLE001 - num2words' converters raise KeyError, IndexError, TypeError, AssertionError...
        pass
    if to != "cardinal":
        return number_words(digits, language)
    if len(digits) > 1:
        return digit_by_digit(digits, language)
    return num2words(int(digits), lang="en") if language != "en" else digits


def _plain(said: str, language: str) -> str:
    """num2words' English writes "one thousand, two hundred and five"; said aloud (and American) it is
    "one thousand two hundred five": the commas would make pauses, and "and" is British."""
    said = said.replace(",", "")
    return said.replace(" and ", " ") if language == "en" else said


def say_number(plain: str, language: str, year_style: bool | None = None, point: str = "point") -> str:
    """Words for ``plain``: digits, with ``.`` before any decimals and no thousands separators.

    ``year_style`` None reads 1100-1999 as years ("nineteen ninety-nine") but for round hundreds, which as
    often count something ("1500 people": one thousand five hundred); True reads any four digits so (where
    the text says it is a year: "in 1900", "the 1900s", a date: nineteen hundred), False never. Decimals are
    read digit by digit after ``point``. A number with a leading zero ("007", a post code) is read digit by
    digit.
    """
    language = base_language(language)
    whole, _, frac = plain.partition(".")
    if frac and not whole:  # ".5": point five, as written
        said = f"{point} {digit_by_digit(frac, language)}"
    elif frac:
        said = f"{say_number(whole, language, False)} {point} {digit_by_digit(frac, language)}"
    elif len(whole) > 1 and whole.startswith("0"):
        said = digit_by_digit(whole, language)
    elif len(whole) == 4 and (year_style if year_style is not None
                              else 1100 <= int(whole) <= 1999 and int(whole) % 100 != 0):
        said = number_words(whole, language, to="year")  # 1999: "nineteen ninety-nine"
    else:
        said = number_words(whole, language)
    return _plain(said, language)


def say_decimal(plain: str, language: str) -> str | None:
    """A decimal ("3.5") as num2words says it in ``language`` ("три целых пять десятых"), for languages
    without a table of their own in ``text.languages``; None where num2words cannot."""
    whole, _, frac = plain.partition(".")
    if len(whole) + len(frac) > MAX_NUMBER_WORDS_DIGITS or base_language(language) in _NUM2WORDS_HANGS:
        return None
    try:
        said = num2words(Decimal(plain), lang=base_language(language))
    except Exception:  # noqa: BLE001 - as in number_words
        return None
    return said.strip(" ,") or None


def is_range(first: str, second: str, dash: str, language: str) -> bool:
    """Whether two numbers joined by ``dash`` ("5-10"; digits with "." before decimals, "-" before a negative
    first) are a range, said "five to ten" and not "five-ten": the second is the larger ("3-2" is a score, "9-5"
    a working day, both said as before), neither is written with a leading zero (a code: "05-10"), and the two
    are no local telephone number, three digits, a hyphen and four ("555-1234"), unless both are round
    (the first ending in a zero, the second in two: "100-1000"). In English a year and the last two digits of
    a later year of its century are one too (``abbreviated_year``: "1990-95")."""
    if abbreviated_year(first, second, language):
        return True
    if any(re.match(r"-?0\d", n) for n in (first, second)):
        return False
    if dash == "-" and re.fullmatch(r"\d{3}", first) and re.fullmatch(r"\d{4}", second) \
            and not (first.endswith("0") and second.endswith("00")):
        return False
    return Decimal(first) < Decimal(second)


def abbreviated_year(first: str, second: str, language: str) -> bool:
    """English only: a year from 1100 to 2099 and the last two digits of a later year of its century, a range
    of years ("1990-95", "2020–21": nineteen ninety to ninety-five, twenty twenty to twenty-one)."""
    return base_language(language) == "en" and bool(re.fullmatch(r"1[1-9]\d\d|20\d\d", first)) \
        and bool(re.fullmatch(r"\d\d", second)) and first[2:] < second


def say_ordinal(digits: str, language: str) -> str:
    return _plain(number_words(digits.lstrip("0") or "0", language, to="ordinal"), base_language(language))


def before_noun(said: str, noun: str, language: str) -> str:
    """A number said before ``noun``: "one" agrees with it where the language wants ("ein Euro", not
    "eins Euro"; "una libra", "une heure"), and so does the last word of a larger whole number ("vingt et
    une heures", "veintiún minutos", "vinte e duas horas"); a decimal's last word belongs to its fraction."""
    rules = RULES.get(base_language(language))
    if rules is None or not rules.one_before[0]:
        return said
    feminine = noun in rules.feminine_nouns
    if said == say_number("1", language):
        return rules.one_before[feminine]
    if rules.point in said.split():
        return said
    head, last = re.fullmatch(r"(.*?[ -]?)([^ -]+)", said).groups()  # "cent quatre-vingt-" and "un"
    for alone, masculine, feminine_form in rules.agreeing_last_words:
        if last == alone:
            return head + (feminine_form if feminine else masculine)
    return said


def currency_names(symbol: str, language: str) -> tuple[str, str, str, str]:
    return CURRENCY_NAMES.get(base_language(language), CURRENCY_NAMES["en"]).get(symbol) or CURRENCY_NAMES["en"][symbol]


def say_currency(symbol: str, plain: str, language: str) -> str:
    """``$4.99`` -> "four dollars ninety-nine cents": the whole units, then the hundredths when there are
    any; never read as a year. ``plain`` as for ``say_number``. Without whole units, the hundredths alone
    ("$0.45", "$.99": forty-five cents); with digits past the hundredths, the amount as a number in the
    plural ("$0.002": zero point zero zero two dollars), as prices per token or per kilowatt-hour are said."""
    one, many, sub_one, sub_many = currency_names(symbol, language)
    whole, _, frac = plain.partition(".")
    whole = whole or "0"
    if frac[2:].strip("0"):
        rules = RULES.get(base_language(language))
        return f"{say_number(whole + '.' + frac, language, False, rules.point if rules else 'point')} {many}"
    cents = int((frac + "00")[:2])
    unit = one if whole.lstrip("0") == "1" else many
    said = f"{before_noun(say_number(whole, language, year_style=False), unit, language)} {unit}"
    if cents:
        sub = sub_one if cents == 1 else sub_many
        said_cents = f"{before_noun(say_number(str(cents), language), sub, language)} {sub}"
        said = said_cents if not whole.strip("0") else f"{said} {said_cents}"
    return said
