"""How each language says what is written, where no library knows it: how numbers are written, the words
for symbols and units, abbreviations, month names and how times and dates are said; and a guess at a text's
language from its writing system, for requests that do not name one.

One table per language, read by both who need to know how a word is said: the normalizer, which rewrites
the text the model is given (``text.normalize``), and the aligner's reading of each word (``text.tokens``),
so the two cannot come to say one thing two ways. Numbers themselves are said by num2words
(``text.numbers``). Languages without a table here get their numbers read (where num2words knows the
language) and nothing else changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LanguageRules:
    """One language's conventions. Unit names are (singular, plural)."""

    code: str
    thousands: str  # characters that separate groups of three digits (a plain space where that is the norm)
    decimal: str  # the decimal mark
    point: str  # the word said for the decimal mark
    minus: str
    percent: str
    symbols: dict[str, str]  # & + = @ # alone
    number_sign: str  # "#5"
    dot: str  # in addresses
    at: str
    slash: str
    dash: str
    underscore: str
    units: dict[str, tuple[str, str]]
    # Abbreviation as written (with its periods) -> reading; titles stand before a name and never end
    # a sentence, the others keep a sentence's final period.
    titles: dict[str, str]
    abbreviations: dict[str, str]
    months: tuple[str, ...]  # January .. December, as said
    day_first: bool  # 03/04/2024 is the 3rd of April
    ordinal_suffixes: str  # regex of what follows the digits of an ordinal ("2nd", "1er", "2º")
    date_format: str  # {day} {month} {year}; {day} is an ordinal where ``ordinal_day``
    ordinal_day: bool = False
    first_day_ordinal: bool = False  # only the first of the month is an ordinal: le premier mai, il primo maggio
    clock: str = "{h} {m}"  # hours and minutes
    clock_full_hour: str = "{h}"
    # Hours, minutes and seconds, (singular, plural), for "1:30:00" (one hour and thirty minutes) and, in
    # English, minutes past 24 ("45:30": forty-five minutes and thirty seconds); the last is joined by
    # symbols["&"], the language's "and".
    time_units: tuple[tuple[str, str], tuple[str, str], tuple[str, str]] = (
        ("hour", "hours"), ("minute", "minutes"), ("second", "seconds"))
    feminine_ordinal: tuple[str, str] = ("", "")  # the ending to swap for "2ª": ("o", "a")
    # Abbreviations that often close a sentence: before a capital or the end, their period stays, as
    # the sentence's ("etc. Then" -> "et cetera. Then"); every other abbreviation's period goes.
    sentence_final: frozenset[str] = frozenset()
    # "one" before a noun, masculine and feminine, where it is not the number's own "one" ("eins" ->
    # "ein Euro", "uno" -> "una libra"), and the nouns here that are feminine (singular and plural).
    one_before: tuple[str, str] = ("", "")
    feminine_nouns: frozenset[str] = frozenset()
    # The last word of a whole number that agrees with the noun after it, as (said alone, before a masculine
    # noun, before a feminine one): "vingt et une heures", "veintiún minutos", "vinte e duas horas".
    agreeing_last_words: tuple[tuple[str, str, str], ...] = ()
    # Titles that, with no name after them, are a street's name: "Elm St." is Elm Street.
    street_readings: dict[str, str] = field(default_factory=dict)
    # The word for × ("3×4": three times four). The aligner says it; the normalizer leaves × as written.
    times: str = ""
    # The titles and abbreviations the aligner reads as words. It reads one word at a time, with none of the
    # context the normalizer weighs: "No." is the word "no" as often as a number, so any abbreviation not
    # here is read by its letters. Adding one changes how the align action (and synthesis without
    # ``normalize``) times it.
    aligner_abbreviations: frozenset[str] = frozenset()
    # The word said between the two ends of a range ("5-10": five to ten, cinq à dix, fünf bis zehn), and the
    # words after which a range is said with the language's "and" (symbols["&"]) instead: "between 5-10" is
    # between five and ten, "zwischen 5-10" zwischen fünf und zehn.
    range_to: str = ""
    range_between: tuple[str, ...] = ()


_METRIC_EN = {
    "km/h": ("kilometer per hour", "kilometers per hour"), "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"), "ml": ("milliliter", "milliliters"), "l": ("liter", "liters"),
    "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "TB": ("terabyte", "terabytes"), "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"), "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"), "kHz": ("kilohertz", "kilohertz"), "Hz": ("hertz", "hertz"),
    "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowatt hour", "kilowatt hours"),
}

EN = LanguageRules(
    code="en", thousands=",", decimal=".", point="point", minus="minus", percent="percent",
    symbols={"&": "and", "+": "plus", "=": "equals", "@": "at", "#": "hash"}, number_sign="number",
    dot="dot", at="at", slash="slash", dash="dash", underscore="underscore",
    units={**_METRIC_EN, "mph": ("mile per hour", "miles per hour"), "mi": ("mile", "miles"),
           "lbs": ("pound", "pounds"), "lb": ("pound", "pounds"), "oz": ("ounce", "ounces"),
           "ft": ("foot", "feet"), "°": ("degree", "degrees")},
    titles={"Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor",
            "St.": "Saint", "Mt.": "Mount", "Capt.": "Captain", "Gen.": "General", "Rev.": "Reverend"},
    abbreviations={"e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus",
                   "approx.": "approximately", "Jr.": "Junior", "Sr.": "Senior", "No.": "number",
                   "Inc.": "Incorporated", "Ltd.": "Limited", "Ave.": "Avenue", "Rd.": "Road"},
    street_readings={"Dr.": "Drive", "St.": "Street"},
    months=("January", "February", "March", "April", "May", "June", "July", "August", "September",
            "October", "November", "December"),
    day_first=False, ordinal_suffixes=r"st|nd|rd|th", date_format="{month} {day}, {year}", ordinal_day=True,
    clock="{h} {m}", clock_full_hour="{h} o'clock",
    sentence_final=frozenset({"etc.", "Jr.", "Sr.", "Inc.", "Ltd.", "Ave.", "Rd."}),
    times="times",
    aligner_abbreviations=frozenset({"Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St.", "Jr.", "Sr.", "vs.", "etc."}),
    range_to="to", range_between=("between",),
)

FR = LanguageRules(
    code="fr", thousands="\u00a0\u202f. ", decimal=",", point="virgule", minus="moins", percent="pour cent",
    symbols={"&": "et", "+": "plus", "=": "égal", "@": "arobase", "#": "dièse"}, number_sign="numéro",
    dot="point", at="arobase", slash="slash", dash="tiret", underscore="tiret bas",
    units={"km/h": ("kilomètre heure", "kilomètres heure"), "km": ("kilomètre", "kilomètres"),
           "cm": ("centimètre", "centimètres"), "mm": ("millimètre", "millimètres"), "m": ("mètre", "mètres"),
           "kg": ("kilo", "kilos"), "g": ("gramme", "grammes"), "mg": ("milligramme", "milligrammes"),
           "ml": ("millilitre", "millilitres"), "l": ("litre", "litres"), "°C": ("degré", "degrés"),
           "°": ("degré", "degrés"), "Go": ("gigaoctet", "gigaoctets"), "Mo": ("mégaoctet", "mégaoctets"),
           "GB": ("gigaoctet", "gigaoctets"), "MB": ("mégaoctet", "mégaoctets"), "h": ("heure", "heures"),
           "min": ("minute", "minutes")},
    titles={"M.": "Monsieur", "MM.": "Messieurs", "Mme": "Madame", "Mmes": "Mesdames", "Mlle": "Mademoiselle",
            "Dr": "Docteur", "Dr.": "Docteur", "Pr": "Professeur", "St": "Saint", "Ste": "Sainte"},
    abbreviations={"p. ex.": "par exemple", "c.-à-d.": "c'est-à-dire", "etc.": "et cetera",
                   "env.": "environ", "n°": "numéro", "nº": "numéro"},
    months=("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
            "novembre", "décembre"),
    day_first=True, ordinal_suffixes=r"er|re|ère|ème|eme|e", date_format="{day} {month} {year}",
    first_day_ordinal=True,
    clock="{h} heures {m}", clock_full_hour="{h} heures",
    time_units=(("heure", "heures"), ("minute", "minutes"), ("seconde", "secondes")),
    sentence_final=frozenset({"etc."}),
    one_before=("un", "une"),
    feminine_nouns=frozenset({"heure", "heures", "minute", "minutes", "seconde", "secondes", "livre", "livres"}),
    agreeing_last_words=(("un", "un", "une"),),
    range_to="à", range_between=("entre",),
)

DE = LanguageRules(
    code="de", thousands=".\u00a0\u202f", decimal=",", point="Komma", minus="minus", percent="Prozent",
    symbols={"&": "und", "+": "plus", "=": "gleich", "@": "at", "#": "Raute"}, number_sign="Nummer",
    dot="Punkt", at="at", slash="Schrägstrich", dash="Bindestrich", underscore="Unterstrich",
    units={"km/h": ("Kilometer pro Stunde", "Kilometer pro Stunde"), "km": ("Kilometer", "Kilometer"),
           "cm": ("Zentimeter", "Zentimeter"), "mm": ("Millimeter", "Millimeter"), "m": ("Meter", "Meter"),
           "kg": ("Kilogramm", "Kilogramm"), "g": ("Gramm", "Gramm"), "mg": ("Milligramm", "Milligramm"),
           "ml": ("Milliliter", "Milliliter"), "l": ("Liter", "Liter"), "°C": ("Grad Celsius", "Grad Celsius"),
           "°": ("Grad", "Grad"), "GB": ("Gigabyte", "Gigabyte"), "MB": ("Megabyte", "Megabyte"),
           "Std.": ("Stunde", "Stunden")},
    titles={"Hr.": "Herr", "Hrn.": "Herrn", "Fr.": "Frau", "Dr.": "Doktor", "Prof.": "Professor"},
    abbreviations={"z.B.": "zum Beispiel", "z. B.": "zum Beispiel", "usw.": "und so weiter",
                   "bzw.": "beziehungsweise", "d.h.": "das heißt", "d. h.": "das heißt", "ca.": "circa",
                   "Nr.": "Nummer", "Str.": "Straße", "u.a.": "unter anderem", "evtl.": "eventuell"},
    months=("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
            "November", "Dezember"),
    day_first=True, ordinal_suffixes=r"\.", date_format="{day} {month} {year}", ordinal_day=True,
    clock="{h} Uhr {m}", clock_full_hour="{h} Uhr",
    time_units=(("Stunde", "Stunden"), ("Minute", "Minuten"), ("Sekunde", "Sekunden")),
    sentence_final=frozenset({"usw.", "u.a.", "Str."}),
    one_before=("ein", "eine"), feminine_nouns=frozenset({"Stunde", "Minute", "Sekunde"}),
    range_to="bis", range_between=("zwischen",),
)

ES = LanguageRules(
    code="es", thousands=".\u00a0\u202f ", decimal=",", point="coma", minus="menos", percent="por ciento",
    symbols={"&": "y", "+": "más", "=": "igual a", "@": "arroba", "#": "almohadilla"}, number_sign="número",
    dot="punto", at="arroba", slash="barra", dash="guion", underscore="guion bajo",
    units={"km/h": ("kilómetro por hora", "kilómetros por hora"), "km": ("kilómetro", "kilómetros"),
           "cm": ("centímetro", "centímetros"), "mm": ("milímetro", "milímetros"), "m": ("metro", "metros"),
           "kg": ("kilo", "kilos"), "g": ("gramo", "gramos"), "mg": ("miligramo", "miligramos"),
           "ml": ("mililitro", "mililitros"), "l": ("litro", "litros"), "°C": ("grado", "grados"),
           "°": ("grado", "grados"), "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes")},
    titles={"Sr.": "señor", "Sra.": "señora", "Srta.": "señorita", "Dr.": "doctor", "Dra.": "doctora",
            "D.": "don", "Dña.": "doña"},
    abbreviations={"p. ej.": "por ejemplo", "etc.": "etcétera", "Ud.": "usted", "Uds.": "ustedes",
                   "núm.": "número", "aprox.": "aproximadamente", "nº": "número"},
    months=("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
            "noviembre", "diciembre"),
    day_first=True, ordinal_suffixes=r"º|ª|°|\.º|\.ª", date_format="{day} de {month} de {year}",
    clock="{h} y {m}", clock_full_hour="{h} en punto", feminine_ordinal=("o", "a"),
    time_units=(("hora", "horas"), ("minuto", "minutos"), ("segundo", "segundos")),
    sentence_final=frozenset({"etc."}),
    one_before=("un", "una"), feminine_nouns=frozenset({"libra", "libras", "hora", "horas"}),
    agreeing_last_words=(("uno", "un", "una"), ("veintiuno", "veintiún", "veintiuna")),
    range_to="a", range_between=("entre",),
)

IT = LanguageRules(
    code="it", thousands=".\u00a0\u202f", decimal=",", point="virgola", minus="meno", percent="per cento",
    symbols={"&": "e", "+": "più", "=": "uguale", "@": "chiocciola", "#": "cancelletto"}, number_sign="numero",
    dot="punto", at="chiocciola", slash="barra", dash="trattino", underscore="trattino basso",
    units={"km/h": ("chilometro orario", "chilometri orari"), "km": ("chilometro", "chilometri"),
           "cm": ("centimetro", "centimetri"), "mm": ("millimetro", "millimetri"), "m": ("metro", "metri"),
           "kg": ("chilo", "chili"), "g": ("grammo", "grammi"), "mg": ("milligrammo", "milligrammi"),
           "ml": ("millilitro", "millilitri"), "l": ("litro", "litri"), "°C": ("grado", "gradi"),
           "°": ("grado", "gradi"), "GB": ("gigabyte", "gigabyte"), "MB": ("megabyte", "megabyte")},
    titles={"Sig.": "signor", "Sig.ra": "signora", "Sigg.": "signori", "Dott.": "dottor",
            "Dott.ssa": "dottoressa", "Prof.": "professor", "Prof.ssa": "professoressa"},
    abbreviations={"ecc.": "eccetera", "p.es.": "per esempio", "p. es.": "per esempio", "ca.": "circa",
                   "n°": "numero", "nº": "numero"},
    months=("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
            "ottobre", "novembre", "dicembre"),
    day_first=True, ordinal_suffixes=r"º|ª|°", date_format="{day} {month} {year}", first_day_ordinal=True,
    clock="{h} e {m}", clock_full_hour="{h} in punto", feminine_ordinal=("o", "a"),
    time_units=(("ora", "ore"), ("minuto", "minuti"), ("secondo", "secondi")),
    sentence_final=frozenset({"ecc."}),
    one_before=("un", "una"), feminine_nouns=frozenset({"sterlina", "sterline", "ora", "ore"}),
    range_to="a", range_between=("tra", "fra"),
)

PT = LanguageRules(
    code="pt", thousands=".\u00a0\u202f ", decimal=",", point="vírgula", minus="menos", percent="por cento",
    symbols={"&": "e", "+": "mais", "=": "igual a", "@": "arroba", "#": "cerquilha"}, number_sign="número",
    dot="ponto", at="arroba", slash="barra", dash="hífen", underscore="sublinhado",
    units={"km/h": ("quilômetro por hora", "quilômetros por hora"), "km": ("quilômetro", "quilômetros"),
           "cm": ("centímetro", "centímetros"), "mm": ("milímetro", "milímetros"), "m": ("metro", "metros"),
           "kg": ("quilo", "quilos"), "g": ("grama", "gramas"), "mg": ("miligrama", "miligramas"),
           "ml": ("mililitro", "mililitros"), "l": ("litro", "litros"), "°C": ("grau", "graus"),
           "°": ("grau", "graus"), "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes")},
    titles={"Sr.": "senhor", "Sra.": "senhora", "Dr.": "doutor", "Dra.": "doutora", "Srta.": "senhorita"},
    abbreviations={"p. ex.": "por exemplo", "etc.": "etcétera", "nº": "número", "n.º": "número",
                   "aprox.": "aproximadamente"},
    months=("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro",
            "outubro", "novembro", "dezembro"),
    day_first=True, ordinal_suffixes=r"º|ª|°|\.º|\.ª", date_format="{day} de {month} de {year}",
    first_day_ordinal=True, clock="{h} e {m}", clock_full_hour="{h} horas", feminine_ordinal=("o", "a"),
    time_units=(("hora", "horas"), ("minuto", "minutos"), ("segundo", "segundos")),
    sentence_final=frozenset({"etc."}),
    one_before=("um", "uma"), feminine_nouns=frozenset({"libra", "libras", "hora", "horas"}),
    agreeing_last_words=(("um", "um", "uma"), ("dois", "dois", "duas")),
    range_to="a", range_between=("entre",),
)

RULES = {r.code: r for r in (EN, FR, DE, ES, IT, PT)}


def guess_language(text: str) -> str:
    """A language tag from the writing system the text is written in, for requests that do not say.

    Only writing systems are told apart (kana: ja, hangul: ko, han: zh, cyrillic: ru, greek: el,
    arabic: ar); text in Latin letters is taken as English.
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
