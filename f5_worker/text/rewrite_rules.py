"""The rules that read what is written and say it: an address, a date, a range, a time, a phone number, money,
a percentage, a measure, an ordinal, a number, an abbreviation, an acronym, a symbol.

Each rule looks at one place of a text and, where what is written there is a token of its kind, gives
what is said for it (an ``Edit``: the span and its reading); where two could start at the same place, the
one earlier in ``TextRules.in_order`` wins. What each recognises is in ``text.rewrite_patterns``, how each
language says things in its table (``text.languages``), numbers in ``text.numbers``. ``text.rewrite_scan``
tries the rules along a text, and ``text.normalize`` applies their edits.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from f5_worker.text.languages import EN, LanguageRules
from f5_worker.text.numbers import (
    CURRENCY_NAMES,
    RANGE_DASHES,
    abbreviated_year,
    before_noun,
    currency_names,
    digit_by_digit,
    is_range,
    say_currency,
    say_decimal,
    say_number,
    say_ordinal,
)
from f5_worker.text.rewrite_patterns import (
    CHARACTER_REFERENCE,
    MARKDOWN_HEADING,
    MARKED_WORD,
    SCALE_SUFFIXES,
    STYLED,
    UNSAID,
    patterns,
)

# Telephone numbers have at least this many digits (a local number) and at most E.164's 15.
PHONE_DIGITS = (7, 15)
# Card and account numbers written in groups have at least this many digits (the shortest card number)
# and at most an IBAN's 34; fewer in groups of four are more likely a list of numbers or years.
GROUPED_DIGITS = (13, 34)
# A group of digits ending in at least this many zeros, with no leading zero, is a round number ("3000");
# a card or account number whose every group is round is all but unheard of, a list of amounts is not.
ROUND_NUMBER_ZEROS = 2
# Acronyms in capitals up to this many letters are spelled ("FBI" -> "F B I"); longer ones with a vowel
# are left to be read as words ("NASA"); those without a vowel are spelled whatever their length.
SPELL_ACRONYM_MAX_LETTERS = 3
_VOWELS = set("AEIOUY")
_ROMAN = set("IVXLC")
_SENTENCE_AFTER = re.compile(r"\s*\Z|\s+[\"'“‘(]?[A-ZÀ-ÖØ-Þ]")

# What a rule found: the span of the text it reads (start, end) and what is said for it.
Edit = tuple[int, int, str]
# What the scales of English amounts ("$5 million", "$5k") multiply by, to compare the two ends of a range.
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}


@dataclass(frozen=True)
class _End:
    """One end of a range as written ("$5", "25°C", "17:00"): where it ends, what it counts ("" for a bare
    number, a currency symbol, "%", a unit as written, "time"), its value to compare (a time's in hours), its
    reading (the edits its own rule gives), the number alone said and the noun said after it ("five",
    "dollars"; "" for a bare number), and, for money, whether it is whole units alone ("$5", not "$4.99")."""

    end: int
    kind: str
    value: Decimal
    edits: list[Edit]
    number: str
    noun: str
    whole: bool = True


def written_forms(text: str, starts_line: bool = True) -> list[Edit]:
    """What the rules read first, in every language: what no one says left out (emoji and what joins them,
    invisible typesetting characters: ``rewrite_patterns.UNSAID``; a markdown heading's "#" marks, at the start
    of a line: of ``text`` too only where it ``starts_line``), letters written in another form said as
    the plain letters (accents as combining marks composed, fullwidth, mathematical and ligature letters as
    the letters they dress up), and HTML character references as the characters they stand for ("&amp;"
    is "&", which the rules then read as any "&").

    F5-TTS has none of the first in its vocabulary and few of the second, and paces its speech by the
    UTF-8 bytes of the text: each reached it as an unknown sign, a family emoji (25 bytes) as long a stretch
    of noise as a 25-letter word. The aligner reads such letters as the plain ones (NFKC), so the model
    is now given what the aligner listens for. A script's part that follows a tag on its line does not start
    one ("Press [pause] # to continue": hash), though its text starts there."""
    edits = [(m.start(), m.end(), "") for m in UNSAID.finditer(text)]
    # from 1, "^" still matches after a line break, never at the text's start
    edits += [(m.start(1), m.end(1), "") for m in MARKDOWN_HEADING.finditer(text, 0 if starts_line else 1)]
    edits += [(m.start(), m.end(), _plain(m.group())) for m in MARKED_WORD.finditer(text)]
    edits += [(m.start(), m.end(), _referenced(m.group())) for m in CHARACTER_REFERENCE.finditer(text)]
    apart: list[Edit] = []
    for edit in sorted(edits):
        if edit[2] != text[edit[0]:edit[1]] and (not apart or apart[-1][1] <= edit[0]):
            apart.append(edit)
    return apart


def _referenced(reference: str) -> str:
    """What is said for a character reference: its character in plain form, or nothing for one no one says.
    ``html`` gives U+FFFD for "&#0;", a surrogate or a number past Unicode's last, and a C1 control as
    itself ("&#x81;"): none is a character of the text, and U+FFFD reached the model as an unknown sign."""
    said = _plain(_unescaped(reference))
    if any(ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs") and not ch.isspace() for ch in said):
        return ""
    return said


def _unescaped(reference: str) -> str:
    """The character a reference stands for, through every escaping ("&amp;amp;" is "&")."""
    while (said := html.unescape(reference)) != reference and CHARACTER_REFERENCE.fullmatch(said):
        reference = said
    return said


def _plain(written: str) -> str:
    """``written`` without what no one says, its letters in their plain form."""
    styled = STYLED.sub(lambda m: unicodedata.normalize("NFKC", m.group()), UNSAID.sub("", written))
    return unicodedata.normalize("NFC", styled)


class TextRules:
    """The rules over one text: each reads what is written at a place (``pos``) and returns the edits for the
    token it recognises there, or None. ``text.rewrite_scan`` tries them at each place, in ``in_order``."""

    def __init__(self, text: str, rules: LanguageRules | None, lang: str):
        self.text = text
        self.rules = rules
        self.lang = lang
        self.p = patterns(lang)
        self.shouted = _shouted(text)
        self.edited_to = 0  # where the scan's last edit ends: a rule reaching back before its place stops there
        # In order: a rule earlier in the list wins where two could start at the same place.
        self.in_order = [self._number] if rules is None else [
            self._address, self._date, self._range, self._time, self._year_list, self._phone, self._money, self._percent, self._unit,
            self._ordinal, self._english_forms, self._number, self._abbreviation, self._acronym, self._symbol]

    # -- what the rules share ----------------------------------------------------------------------

    def _say(self, written: str, year_style: bool | None = False) -> str:
        """A number as written in this language, in words; one written with thousands separators is
        never a year."""
        plain = self._plain(written)
        grouped = plain != written and "." not in plain
        return say_number(plain, self.lang, False if grouped else year_style, (self.rules or EN).point)

    def _plain(self, written: str) -> str:
        """A number as written, as digits with ``.`` before decimals."""
        rules = self.rules or EN
        if rules is EN or not re.search(rf"[{re.escape(rules.decimal)}]", written):
            if rules is not EN and re.fullmatch(r"\d{1,3}(\.\d{3})+", written):
                return written.replace(".", "")
            whole, dot, frac = written.partition(".")
            return re.sub(r"\D", "", whole) + (("." + frac) if dot else "")
        whole, _, frac = written.rpartition(rules.decimal)
        return re.sub(r"\D", "", whole) + "." + frac

    def _singular(self, written: str) -> bool:
        whole = self._plain(written).partition(".")[0].lstrip("0")
        return whole in ("", "1") if self.lang == "fr" else self._plain(written).lstrip("0") == "1"

    def _german_case(self, ordinal: str, pos: int) -> str:
        """A German ordinal after a preposition or den/dem takes the dative: am fünfzehnten März."""
        before = self._before(pos)
        if self.lang == "de" and ordinal.endswith("e") and self.p["article"].search(before) \
                and not re.search(r"\b(?:der|die|das)\s+\Z", before, re.IGNORECASE):
            return ordinal + "n"
        return ordinal

    def _before(self, pos: int, size: int = 40) -> str:
        return self.text[max(0, pos - size):pos]

    def _sentence_ends_after(self, end: int) -> bool:
        return bool(_SENTENCE_AFTER.match(self.text, end))

    # -- rules --------------------------------------------------------------------------------------

    def _address(self, pos: int) -> list[Edit] | None:
        rules = self.rules or EN
        m = self.p["email"].match(self.text, pos)
        if m:
            local, _, domain = m.group().partition("@")
            return [(m.start(), m.end(), f"{_read_address(local, rules)} {rules.at} {_read_address(domain, rules)}")]
        m = self.p["url"].match(self.text, pos) or self.p["domain"].match(self.text, pos)
        if m:
            url = m.group()
            url = url.rstrip(".,;:!?")
            body = re.sub(r"^https?://", "", url, flags=re.IGNORECASE).rstrip("/")
            if not body:
                return None
            return [(m.start(), m.start() + len(url), _read_address(body, rules))]
        return None

    def _date(self, pos: int) -> list[Edit] | None:
        rules = self.rules
        m = self.p["iso_date"].match(self.text, pos)
        if m:
            year, month, day = m.group(1), int(m.group(2)), int(m.group(3))
        else:
            m = self.p["numeric_date"].match(self.text, pos)
            if not m:
                return self._day_and_month(pos)
            first, second, year = int(m.group(1)), int(m.group(3)), m.group(4)
            day_first = rules.day_first if first <= 12 and second <= 12 else first > 12
            day, month = (first, second) if day_first else (second, first)
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        if rules.ordinal_day or (rules.first_day_ordinal and day == 1):
            said_day = self._german_case(say_ordinal(str(day), self.lang), pos)
        else:
            said_day = say_number(str(day), self.lang)
        said_year = say_number(year.lstrip("0") or "0", self.lang, year_style=True)
        said = rules.date_format.format(day=said_day, month=rules.months[month - 1], year=said_year)
        return [(m.start(), m.end(), said)]

    def _day_and_month(self, pos: int) -> list[Edit] | None:
        """German only: a date without its year after an article or a preposition ("am 15.03.", "vom 1.3. bis
        15.3."): am fünfzehnten März. It read "fünfzehn Komma null drei". Elsewhere "1.3." is as often a
        section's number. The period after the month goes with the ordinal, and stays where a sentence ends."""
        m = self.p["day_and_month"].match(self.text, pos) if self.lang == "de" else None
        if not m or not self.p["article"].search(self._before(pos)):
            return None
        day, month = int(m.group(1)), int(m.group(2))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        said = f"{self._german_case(say_ordinal(str(day), 'de'), pos)} {self.rules.months[month - 1]}"
        return [(m.start(), m.end() - 1 if self._sentence_ends_after(m.end()) else m.end(), said)]

    def _range(self, pos: int) -> list[Edit] | None:
        """Two numbers joined by a hyphen or an en dash, the second the larger: a range, "5-10 minutes" five to
        ten minutes, "20-25°C" twenty to twenty-five degrees Celsius, "$5-$10" five to ten dollars, "9:00-17:00"
        nine o'clock to seventeen hundred ("to" in the language: à, bis, a; after "between" its "and"). Said
        as two numbers and a dash, "twenty-twenty-five degrees" was the year 2025.

        Each end is read by its own rule. An end's unit, currency or percent sign said after the last number
        is not said twice ("$5-$10": five to ten dollars), but for amounts with cents ("$5-$7.50": five dollars
        to seven dollars fifty cents) and times, whose ends are said whole; the first number then agrees with
        the noun after the last as the language wants ("1-2 €": ein bis zwei Euro; "1-2 h": une à deux
        heures). Not a range: a second end no larger than the first ("3-2", a score; "9-5"), two ends of
        different kinds ("5°-10°C"), two numbers in a longer chain of hyphens (a phone number, an ISO date,
        "5-10-15", "1-800-FLOWERS"), or what ``numbers.is_range`` leaves out ("555-1234")."""
        rules, text = self.rules, self.text
        if rules is None or (pos >= 1 and text[pos - 1] == "+") \
                or (pos >= 2 and text[pos - 1] in RANGE_DASHES + ".,:/" and text[pos - 2].isalnum()):
            return None  # "+1-5", a country code; "A-1-5", "1.5-10", "3/4-5": part of something longer
        first = self._range_end(pos, first=True)
        if first is None or first.end >= len(text) - 1 or text[first.end] not in RANGE_DASHES:
            return None
        dash = text[first.end]
        second = self._range_end(first.end + 1, first=False, carried=first.kind)
        if second is None or re.match(rf"[{RANGE_DASHES}]\w|[.,/:]\d", text[second.end:second.end + 2]) \
                or self._phone(first.end + 1):
            return None  # "5-10-15", "1-800-FLOWERS", "5-3/4"; "1–4111 1111 1111 1111", a card's first group
        between = re.search(rf"\b(?i:{'|'.join(rules.range_between)})\s+\Z", self._before(pos))
        to = f" {rules.symbols['&'] if between else rules.range_to} "
        first_written, second_written = text[pos:first.end], text[first.end + 1:second.end]
        if first.kind == second.kind == "":
            sign = "-" if first.value < 0 else ""
            if not is_range(sign + self._plain(first_written.lstrip("-−")), self._plain(second_written), dash,
                            self.lang):
                return None
            said_first, said_second = first.number, second.number
            if self.lang == "en" and all(re.fullmatch(r"1[1-9]\d\d|20\d\d", w) for w in (first_written, second_written)):
                said_first, said_second = (say_number(w, "en", year_style=True) for w in (first_written, second_written))
            elif abbreviated_year(first_written, second_written, self.lang):  # 1990-95: nineteen ninety to ninety-five
                said_first = say_number(first_written, "en", year_style=True)
                said_second = f"oh-{say_number(second_written[1], 'en')}" if second_written[0] == "0" else said_second
            elif self.lang == "en" and self.p["month"].search(self._before(pos)) \
                    and re.fullmatch(r"\d{1,2}", first_written) and re.fullmatch(r"\d{1,2}", second_written) \
                    and 1 <= int(first_written) and int(second_written) <= 31:
                said_second = say_ordinal(second_written, "en")  # March 5-10: March fifth to tenth
            return [(pos, second.end, said_first + to + said_second)]
        if first.value >= second.value or first.kind not in ("", second.kind):
            return None
        if first.kind == "" and second.kind == "time" and self.lang == "de" \
                and (clock := re.fullmatch(r"(\d{1,2})\.([0-5]\d)", first_written)) and int(clock[1]) <= 24:
            # "8.30-9.30 Uhr": acht Uhr dreißig bis neun Uhr dreißig, as "8.30 Uhr" is read
            head = [(pos, first.end, self._clock_said(int(clock[1]), int(clock[2])))]
        elif (second.kind == "time" and first.kind) or not (first.whole and second.whole):
            head = first.edits  # times, and amounts with cents, said whole: five dollars to seven dollars fifty cents
        else:  # one unit, currency or sign for both: "1-2 €", "$5-$10" one to two, five to ten …
            said = first.number
            if self.lang == "de" or second.noun in rules.feminine_nouns:
                said = before_noun(said, second.noun, self.lang)  # ein bis zwei Euro, une à deux heures
            head = [(pos, first.end, said)]
        (start, _, said_head), (_, end, said_tail) = head[-1], second.edits[0]
        return [*head[:-1], (start, end, said_head + to + said_tail), *second.edits[1:]]

    def _range_end(self, pos: int, first: bool, carried: str = "") -> _End | None:
        """One end of a range at ``pos`` (see ``_range``): a time, an amount of money, a percentage, a measure
        or a bare number, read by its rule. A first end may be negative ("-5-10°C"), but not an amount of money;
        a second end without a currency sign takes the first's (``carried``: "$5-10 million")."""
        text, rules, p = self.text, self.rules, self.p
        if first and text[pos] in "-−" and text[pos + 1:pos + 2].isdigit() \
                and (pos == 0 or text[pos - 1].isspace() or text[pos - 1] in "(["):
            end = self._range_end(pos + 1, first=False)
            if end is None or not (end.kind in ("", "%") or end.kind in rules.units):
                return None  # "-$5-$10": no range
            minus = rules.minus
            (_, stop, said), *rest = end.edits
            return _End(end.end, end.kind, -end.value, [(pos, stop, f"{minus} {said}"), *rest],
                        f"{minus} {end.number}", end.noun)
        seconds = p["minutes_seconds"].match(text, pos) if self.lang == "en" else None
        if p["hours_minutes_seconds"].match(text, pos) or (seconds and int(seconds[1]) > 24):
            return None  # a duration ("1:30:00", "45:30"), whose parts are named
        m = p["time"].match(text, pos)
        if m and (edits := self._clock(pos)):
            hour, minute = int(m.group(1)), int(m.group(2) or 0)
            if self.lang == "en" and m.group(4):
                hour = hour % 12 + (12 if m.group(4) in "Pp" else 0)
            return _End(m.end(), "time", Decimal(hour) + Decimal(minute) / 60, edits, "",
                        "Uhr" if self.lang == "de" else rules.time_units[0][1])
        m = p["currency_before"].match(text, pos) or p["currency_after"].match(text, pos)
        if m:
            if m.re is p["currency_before"]:
                symbol, amount, scale = m.group(1), m.group(4), m.group(5) or SCALE_SUFFIXES.get(m.group(6))
                if m.group(3):
                    return None  # "$-5"
            else:
                symbol, amount, scale = m.group(3), m.group(1), None
            return self._money_end(m.end(), symbol, amount, scale, self._money(pos))
        for kind, rule in (("%", self._percent), ("unit", self._unit)):
            m = p["percent" if kind == "%" else "unit"].match(text, pos)
            if m and (edits := rule(pos)) and (value := self._value(m.group(1))) is not None:
                noun = rules.percent if kind == "%" else rules.units[m.group(3)][1]
                return _End(m.end(), kind if kind == "%" else m.group(3), value, edits, self._say(m.group(1)), noun)
        if carried in CURRENCY_NAMES["en"] and (m := p["scaled"].match(text, pos)):
            amount, scale = m.group(1), m.group(2) or SCALE_SUFFIXES.get(m.group(3))
            return self._money_end(m.end(), carried, amount, scale, [(pos, m.end(), self._amount(carried, amount, scale))])
        m = p["number"].match(text, pos)
        if m and (edits := self._number(pos)) and (value := self._value(m.group(1))) is not None:
            return _End(m.end(), "", value, edits, edits[0][2], "")
        return None

    def _value(self, written: str) -> Decimal | None:
        """A number as written, to compare; None where it is no one number ("1.200 555" in French, which
        the number pattern takes whole)."""
        try:
            return Decimal(self._plain(written))
        except InvalidOperation:
            return None

    def _money_end(self, end: int, symbol: str, amount: str, scale: str | None, edits: list[Edit]) -> _End | None:
        """An amount of money as one end of a range: its value, the number alone and the currency's name."""
        amount = "0" + amount if amount.startswith(".") else amount  # "$.50" is $0.50
        value = self._value(amount)
        if value is None:
            return None
        if scale:  # "$5 million": five million, dollars
            return _End(end, symbol, value * _SCALES[scale], edits, f"{self._say(amount)} {scale}",
                        currency_names(symbol, "en")[1])
        whole, _, cents = self._plain(amount).partition(".")
        return _End(end, symbol, value, edits, say_number(whole or "0", self.lang, year_style=False),
                    currency_names(symbol, self.lang)[1], whole=not cents.strip("0"))

    def _time(self, pos: int) -> list[Edit] | None:
        return self._hours_minutes_seconds(pos) or self._clock(pos)

    def _hours_minutes_seconds(self, pos: int) -> list[Edit] | None:
        """Hours, minutes and seconds ("9:05:30", "1:30:00"), and in English minutes and seconds where the first
        number is past any hour of a clock ("45:30"), each named: "nine hours five minutes and thirty seconds",
        "one hour and thirty minutes", "forty-five minutes and thirty seconds". As NeMo's English normalizer
        reads hours, minutes and seconds; the names leave no doubt whether a race time or a clock is meant,
        and a part that is zero is left out ("1:30:00" is no "zero seconds")."""
        m = self.p["hours_minutes_seconds"].match(self.text, pos)
        meridiem = None
        if m:
            values: list[str | None] = [m.group(1), m.group(2), m.group(3)]
            meridiem = m.group(5) if self.lang == "en" else None
            if meridiem and not 1 <= int(m.group(1)) <= 12:
                return None
        else:
            # English only: elsewhere "28:25" is a score far more often (handball, volleyball: 28 zu 25)
            m = self.p["minutes_seconds"].match(self.text, pos) if self.lang == "en" else None
            if not m or int(m.group(1)) <= 24:  # up to 24: hours and minutes, a clock (``_clock``)
                return None
            values = [None, m.group(1), m.group(2)]
        rules = self.rules
        if self.lang == "de" and values[0] is not None and m.group(4):
            # "9:05:30 Uhr" is a time of day: neun Uhr fünf und dreißig Sekunden, not "… Sekunden Uhr"
            hour, minute = int(values[0]), int(values[1])
            said = (rules.clock.format(h=self._hour(hour), m=say_number(str(minute), "de")) if minute
                    else rules.clock_full_hour.format(h=self._hour(hour)))
            if self._plain(values[2]).strip("0."):
                said += f" {rules.symbols['&']} {self._counted(values[2], rules.time_units[2])}"
            return [(m.start(), m.end(), said)]
        named = [self._counted(value, unit) for value, unit in zip(values, rules.time_units)
                 if value is not None and self._plain(value).strip("0.")]
        if not named:
            named = [self._counted("0", rules.time_units[2])]
        said = named[0] if len(named) == 1 else f"{' '.join(named[:-1])} {rules.symbols['&']} {named[-1]}"
        if meridiem:
            return self._with_meridiem(m, said, 5)
        return [(m.start(), m.end(), said)]

    def _hour(self, hour: int) -> str:
        """The hour of a clock, in a language other than English, as said before the hour's noun."""
        noun = "Uhr" if self.lang == "de" else self.rules.time_units[0][hour != 1]
        return before_noun(say_number(str(hour), self.lang), noun, self.lang)

    def _counted(self, written: str, unit: tuple[str, str]) -> str:
        """A number of hours, minutes or seconds as written ("05", "30,5") and the unit's name."""
        whole, dot, frac = self._plain(written).partition(".")
        plain = (whole.lstrip("0") or "0") + dot + frac
        name = unit[0] if plain == "1" else unit[1]
        said = before_noun(say_number(plain, self.lang, False, self.rules.point), name, self.lang)
        if self.lang == "it" and said == "una" and name[0] in "aeiou":
            return f"un'{name}"  # un'ora
        return f"{said} {name}"

    def _with_meridiem(self, m: re.Match, clock: str, letter: int) -> list[Edit]:
        """A time's reading followed by "A M" or "P M" (group ``letter`` of ``m`` holds the a or p, the group
        before it the space, if any, between the time and its letters)."""
        letters = f"{m.group(letter).upper()} M"
        # "at 3pm." and "at 5 p.m. Then": the last period also ends the sentence, so it stays
        end = m.end() - 1 if m.group().endswith(".") and self._sentence_ends_after(m.end()) else m.end()
        if m.group(letter - 1):  # "3:30 pm": each written word its own reading
            return [(m.start(), m.start(letter - 1), clock), (m.start(letter), end, letters)]
        return [(m.start(), end, f"{clock} {letters}")]

    def _clock(self, pos: int) -> list[Edit] | None:
        m = self.p["time"].match(self.text, pos)
        if not m:
            return None
        rules = self.rules
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if self.lang == "en":
            meridiem = m.group(4)
            if m.group(2) is None and not meridiem:
                return None
            if meridiem and not 1 <= hour <= 12:
                return None
            if hour > 24:  # 24:00, the end of a day, is twenty-four hundred; 24:30 twenty-four thirty
                return None
            h = say_number(str(hour), "en")
            if minute == 0:
                clock = h if meridiem else (f"{h} hundred" if hour > 12 or m.group(1).startswith("0")
                                            else rules.clock_full_hour.format(h=h))
            elif minute < 10:
                clock = f"{h} oh {say_number(str(minute), 'en')}"
            else:
                clock = f"{h} {say_number(str(minute), 'en')}"
            if not meridiem:
                return [(m.start(), m.end(), clock)]
            return self._with_meridiem(m, clock, 4)
        if hour > 24 or (m.group(2) is None and self.lang not in ("fr", "de")):
            return None
        return [(m.start(), m.end(), self._clock_said(hour, minute))]

    def _clock_said(self, hour: int, minute: int) -> str:
        """A time of day in a language other than English. The hour agrees with the noun said or understood
        after it: une heure, vingt et une heures, ein Uhr, la una (hora), l'una (ora), duas horas; German's is
        "Uhr", which takes "ein" whatever its gender."""
        rules = self.rules
        h = self._hour(hour)
        said = (rules.clock_full_hour.format(h=h) if minute == 0
                else rules.clock.format(h=h, m=say_number(str(minute), self.lang)))
        if (self.lang == "fr" and hour <= 1) or (self.lang == "pt" and hour == 1):
            one, many = rules.time_units[0]
            said = said.replace(many, one)  # une heure, zéro heure, uma hora
        return said

    def _year_list(self, pos: int) -> list[Edit] | None:
        """Three years or more in increasing order joined by hyphens or en dashes ("2019-2020-2021-2022",
        seasons or editions): read as a list of years, "twenty nineteen, twenty twenty, twenty twenty-one,
        twenty twenty-two". Not "to" between each two, as for a range of two years ("2019-2022"): nobody says
        "twenty nineteen to twenty twenty to …"; and not digit by digit, as a card number in groups would be."""
        m = self.p["year_list"].match(self.text, pos)
        years = re.split(r"[-–]", m.group()) if m else []
        if not _years_in_order(years):
            return None
        return [(m.start(), m.end(), ", ".join(self._say(year, True) for year in years))]

    def _phone(self, pos: int) -> list[Edit] | None:
        """Phone numbers, and card and account numbers written in groups ("4111 1111 1111 1111",
        "0042-7781-9930-1122"): read as written, group by group, digit by digit, a comma between groups;
        nobody reads such a group as a number ("four thousand one hundred eleven") or says its hyphen."""
        m = self.p["phone"].match(self.text, pos)
        digits = sum(ch.isdigit() for ch in m.group()) if m else 0
        if not PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]:
            m = self.p["digit_groups"].match(self.text, pos)
            digits = sum(ch.isdigit() for ch in m.group()) if m else 0
            if not GROUPED_DIGITS[0] <= digits <= GROUPED_DIGITS[1]:
                return None
            groups = re.split(r"[ \-]", m.group())
            # hyphens join the groups of one number ("1000-2000-3000-4000" is still a card); spaces may part a list
            if _years_in_order(groups) or (m.group(1) == " " and _round_numbers(groups)):
                return None
        rules = self.rules or EN
        edits = []
        pieces = list(re.finditer(r"\S+", m.group()))
        for i, piece in enumerate(pieces):
            groups = [g for g in re.split(r"[^\d+]+", piece.group()) if g]
            said = ", ".join(
                (f"{rules.symbols['+']} " if g.startswith("+") else "") + digit_by_digit(g, self.lang)
                for g in groups)
            if i < len(pieces) - 1:
                said += ","
            edits.append((m.start() + piece.start(), m.start() + piece.end(), said))
        return edits

    def _money(self, pos: int) -> list[Edit] | None:
        m = self.p["currency_before"].match(self.text, pos)
        sign = ""
        if m:
            symbol, amount = m.group(1), m.group(4)
            sign = f"{(self.rules or EN).minus} " if m.group(3) else ""  # "$-5": minus five dollars
            scale = m.group(5) or SCALE_SUFFIXES.get(m.group(6))
        else:
            m = self.p["currency_after"].match(self.text, pos)
            if not m:
                return None
            amount, symbol, scale = m.group(1), m.group(3), None
        return [(m.start(), m.end(), sign + self._amount(symbol, amount, scale))]

    def _amount(self, symbol: str, amount: str, scale: str | None) -> str:
        """An amount of money as written ("4,99", ".50") in words, with the scale an English amount is written
        with ("$5 million", "$1.2B": five million dollars, one point two billion dollars)."""
        amount = "0" + amount if amount.startswith(".") else amount  # "$.50" is $0.50
        if scale:
            return f"{self._say(amount)} {scale} {currency_names(symbol, 'en')[1]}"
        return say_currency(symbol, self._plain(amount), self.lang)

    def _percent(self, pos: int) -> list[Edit] | None:
        m = self.p["percent"].match(self.text, pos)
        if not m:
            return None
        said = self._say(m.group(1))
        percent = (self.rules or EN).percent
        if m.group(2):
            return [(m.start(1), m.end(1), said), (m.end() - 1, m.end(), percent)]
        return [(m.start(), m.end(), f"{said} {percent}")]

    def _unit(self, pos: int) -> list[Edit] | None:
        m = self.p["unit"].match(self.text, pos)
        if not m:
            return None
        if m.group(3) == "°" and "°" in self.rules.ordinal_suffixes and self._month_follows(m.end()):
            return None  # "il 1° gennaio", "1° de maio": the degree sign written for the ordinal's º
        singular, plural = self.rules.units[m.group(3)]
        name = singular if self._singular(m.group(1)) else plural
        said = before_noun(self._say(m.group(1)), name, self.lang)
        if m.group(2):
            return [(m.start(1), m.end(1), said), (m.start(3), m.end(3), name)]
        return [(m.start(), m.end(), f"{said} {name}")]

    def _month_follows(self, end: int) -> bool:
        months = "|".join(self.rules.months)
        return bool(re.match(rf"\s+(?:de\s+)?(?i:{months})\b", self.text[end:end + 30]))

    def _ordinal(self, pos: int) -> list[Edit] | None:
        m = self.p["ordinal"].match(self.text, pos)
        if not m:
            return None
        rules = self.rules
        suffix = m.group(2)
        if rules.code == "de":
            after = self.text[m.end():m.end() + 20]
            month = re.match(r"\s+(?:" + "|".join(rules.months) + r")\b", after)
            if not (month or self.p["article"].search(self._before(pos))):
                return None
        said = self._german_case(say_ordinal(m.group(1), self.lang), pos)
        if rules.code == "fr" and suffix in ("re", "ère") and m.group(1) == "1":
            said = "première"
        if rules.feminine_ordinal[0] and "ª" in suffix:
            masc, fem = rules.feminine_ordinal
            said = " ".join(w[:-1] + fem if w.endswith(masc) else w for w in said.split())
        return [(m.start(), m.end(), said)]

    def _english_forms(self, pos: int) -> list[Edit] | None:
        """English only: decades ("1990s", "'90s": nineteen nineties) and simple fractions ("3/4": three
        quarters; the numerator below the denominator, so "24/7" stays). Year ranges are ranges (``_range``)."""
        if self.lang != "en":
            return None
        m = self.p["decade"].match(self.text, pos)
        if m:
            digits = m.group(1) or m.group(2)
            said = say_number(digits, "en", year_style=len(digits) == 4)
            last = said.split(" ")[-1].split("-")[-1]
            plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
            return [(m.start(), m.end(), said[: len(said) - len(last)] + plural)]
        m = self.p["fraction"].match(self.text, pos)
        if m and 0 < int(m.group(1)) < int(m.group(2)) <= 16:
            top, bottom = int(m.group(1)), int(m.group(2))
            name = {2: ("half", "halves"), 4: ("quarter", "quarters")}.get(bottom)
            if name is None:
                ordinal = say_ordinal(str(bottom), "en")
                name = (ordinal, ordinal + "s")
            return [(m.start(), m.end(), f"{say_number(str(top), 'en')} {name[top != 1]}")]
        return None

    def _number(self, pos: int) -> list[Edit] | None:
        text = self.text
        m = self.p["sign"].match(text, pos)
        if m:
            return [(m.start(), m.end(), (self.rules or EN).number_sign + " ")]
        sign = ""
        start = pos
        if text[pos] in "-−" and (pos == 0 or text[pos - 1].isspace() or text[pos - 1] in "(["):
            sign = (self.rules or EN).minus + " "
            pos += 1
            if self.rules is not None and pos < len(text) and (text[pos].isdigit() or text[pos] in "$€£¥R"):
                # -5°C: minus five degrees Celsius; -$5, -5 €: minus five dollars, moins cinq euros
                found = self._money(pos) or self._unit(pos) or self._percent(pos)
                if found:
                    (_, end, said), *rest = found
                    return [(start, end, sign + said), *rest]
        m = self.p["version"].match(text, pos)
        if m and not (self.rules and self.rules.thousands.startswith(".") and
                      re.fullmatch(r"\d{1,3}(?:\.\d{3})+", m.group())):
            dot = (self.rules or EN).dot
            return [(start, m.end(), sign + f" {dot} ".join(say_number(part, self.lang, False)
                                                               for part in m.group().split(".")))]
        m = self.p["number"].match(text, pos)
        if not m:
            return None
        written = m.group(1)
        if self.rules is None and re.search(r"[.,]\d", written) and not re.fullmatch(r"\d{1,3}(?:,\d{3})+", written):
            said = say_decimal(written.replace(",", "."), self.lang)
            return [(start, m.end(), sign + said)] if said else None
        year_style: bool | None = None
        if self.rules is not None and re.fullmatch(r"\d{4}", written):
            before = self._before(start)
            if self.p["date_context"].search(before) and 1100 <= int(written) <= 2099:
                year_style = True  # "March 15, 2024", "in 2024": twenty twenty-four
        if self.rules is not None and self.rules.code == "en" and re.fullmatch(r"\d{1,2}", written) \
                and self.p["month"].search(self._before(start)) and 1 <= int(written) <= 31:
            return [(start, m.end(), say_ordinal(written, "en"))]  # "March 15" -> March fifteenth
        return [(start, m.end(), sign + self._say(written, year_style))]

    def _abbreviation(self, pos: int) -> list[Edit] | None:
        rules = self.rules
        m = self.p["title"].match(self.text, pos)
        if m:
            written = m.group(1)
            if len(written.rstrip(".")) == 1 and re.search(r"(?<![^\W\d_])[A-Z]\s+\Z", self._before(pos)):
                return None  # "F M." is a spelled acronym ("FM."), not a title
            following = self.text[m.end():m.end() + 40].lstrip()
            # Before anything but a lowercase word (a name, mostly): a title. Nothing a rule rewrites starts
            # with a lowercase letter and becomes something else, so the choice is the same on the spoken text.
            if following and not following[0].islower() or self._paired_title(written, pos, m.end()):
                return [(m.start(), m.end(), rules.titles[written])]
            other = rules.street_readings.get(written)
            return [(m.start(), m.end(), other)] if other else None
        m = self.p["abbreviation"].match(self.text, pos)
        if not m:
            return None
        written = m.group(1)
        key = next(k for k in rules.abbreviations if k.lower() == written.lower())
        said = rules.abbreviations[key]
        if key == "No." and not (written == key and re.match(r"\s?\d", self.text[m.end():m.end() + 2])):
            return None  # "No. 5" is number five; "no." is a word
        if written[0].isupper() and key[0].islower() and said[0].islower():
            said = said[0].upper() + said[1:]  # "E.g." at a sentence's start
        end = m.end()
        if key in rules.sentence_final and self._sentence_ends_after(end):
            end -= 1  # the abbreviation's period also ends the sentence: it stays
        return [(m.start(), end, said)]

    def _paired_title(self, written: str, pos: int, end: int) -> bool:
        """Whether the title ``written`` at ``pos`` is joined by "and" to another title: "Mr. and Mrs. Smith",
        "Dr. & Mrs. Jones", "M. et Mme Dupont", "Hr. und Fr. Müller" name two people, though a lowercase word
        follows the first title. A street's "Dr." or "St." after its name ("Elm St. and Dr. Smith") stays a
        street: the word before it is a name or a number, not the end of a sentence. A sentence's first word is
        no name for being capitalised ("When Dr. and Mrs. Smith arrived"): there, the title."""
        rules = self.rules
        joined = re.compile(rf"\s+(?:&|{re.escape(rules.symbols['&'])})\s+").match(self.text, end)
        if not joined or not self.p["title"].match(self.text, joined.end()):
            return False
        before = self._before(pos)
        name = re.search(r"(?:^|\s)([\w'-]+)\s+\Z", before)
        if written not in rules.street_readings or not name:
            return True
        if name[1][0].isdigit():
            return False
        start = pos - len(before) + name.start(1)
        return not name[1][0].isupper() or self._starts_sentence(start)

    def _starts_sentence(self, pos: int) -> bool:
        """Whether the word at ``pos`` is a sentence's first: nothing but spaces, quotes or brackets after the
        start of the text, a line break, or a sentence's end."""
        before = self._before(pos).rstrip(" \t\"'“‘«([{")
        return not before or before[-1] in ".!?…\n"

    def _acronym(self, pos: int) -> list[Edit] | None:
        m = self.p["dotted_acronym"].match(self.text, pos)
        if m:
            letters = m.group().replace(".", " ").strip()
            end = m.end() - 1 if self._sentence_ends_after(m.end()) and m.end() == len(self.text.rstrip()) \
                else m.end()
            return [(*self._apart(m.start(), end), letters)]
        m = self.p["acronym"].match(self.text, pos)
        if not m or self.shouted:
            return None
        word = m.group()
        if set(word) <= _ROMAN and len(word) <= 4:
            return None
        if len(word) <= SPELL_ACRONYM_MAX_LETTERS or not set(word) & _VOWELS:
            return [(*self._apart(m.start(), m.end()), " ".join(word))]
        return None

    def _apart(self, start: int, end: int) -> tuple[int, int]:
        """A spelled acronym's span, taking in a hyphen that joins it to a word beside it ("F5-TTS", "GPT-4",
        "TTS-based"): its letters are words of their own, and the hyphen would glue the first or the last
        of them to the neighbour ("F5-T T S", one word "F5-T" for the model and the aligner). The reading
        then replaces the hyphen, and ``normalize`` puts a space in its place."""
        text = self.text
        if start >= 2 and text[start - 1] == "-" and text[start - 2].isalnum() and start - 1 >= self.edited_to:
            start -= 1
        if end + 1 < len(text) and text[end] == "-" and text[end + 1].isalnum():
            end += 1
        return start, end

    def _symbol(self, pos: int) -> list[Edit] | None:
        ch = self.text[pos]
        rules = self.rules
        if ch == "%":
            return [(pos, pos + 1, rules.percent)]
        if ch in rules.symbols:
            return [(pos, pos + 1, rules.symbols[ch])]
        return None


def _years_in_order(groups: list[str]) -> bool:
    """Whether groups of digits are years from 1100 to 2099 in increasing order ("1990 2000 2010 2020"): a
    list of years written without commas, not a card number."""
    years = [int(g) for g in groups if re.fullmatch(r"1[1-9]\d\d|20\d\d", g)]
    return len(years) == len(groups) > 1 and years == sorted(set(years))


def _round_numbers(groups: list[str]) -> bool:
    """Whether every group of digits is a round number ("1000 2000 3000 4000", "10000 20000 30000"): a list
    of numbers written without commas, read as numbers, not a card number read digit by digit."""
    return all(not g.startswith("0") and g.endswith("0" * ROUND_NUMBER_ZEROS) for g in groups)


def _shouted(text: str) -> bool:
    """A text in capitals throughout (two words or more in capitals, no lowercase letter) is shouted: its
    short words are words, not acronyms to spell, and what is rewritten in it is written in capitals too,
    so its spoken text is shouted as well (normalizing it again changes nothing). A writing system without
    case (Chinese, Japanese) has no lowercase letters either, and is not shouted."""
    return not any(ch.islower() for ch in text) and \
        sum(any(ch.isupper() for ch in word) for word in re.findall(r"[^\W\d_]{2,}", text)) >= 2


def _read_address(address: str, rules: LanguageRules) -> str:
    """An address read out: "john.doe@example.com" -> "john dot doe at example dot com"; digits one by one."""
    names = {".": rules.dot, "/": rules.slash, "-": rules.dash, "_": rules.underscore, "@": rules.at,
             "+": rules.symbols["+"], ":": "", "?": "", "=": "", "&": rules.symbols["&"], "#": "", "%": "", "~": ""}
    parts = []
    for piece in re.findall(r"[^\W\d_]+|\d+|.", address):
        if piece.isdecimal():  # not isdigit(): "²" is a digit that int() refuses
            parts.append(digit_by_digit(piece, rules.code))
        elif piece[0].isalnum():
            parts.append(piece.lower())  # names in addresses are in no particular case: read as words
        else:
            parts.append(names.get(piece, ""))
    said = " ".join(p for p in parts if p)
    return re.sub(r"\bwww\b", "w w w", said)
