"""Text normalization for synthesis (``text.normalize`` and its rules, ``text.rewrite_rules`` with what they
recognise in ``text.rewrite_patterns``): what each language says for what is written, and a normalized text
that reads the same when normalized again."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from text_samples import LANGUAGES, TEXTS

from f5_worker.text.normalize import normalize
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.tokens import token_spans

CASES = {
    "en": [
        ("It costs $4.99.", "It costs four dollars ninety-nine cents."),
        ("$1 and £2.50", "one dollar and two pounds fifty pence"),
        ("$5 million", "five million dollars"),
        ("Meet at 3:30 pm today", "Meet at three thirty P M today"),
        ("at 9:05, at 15:45 and 3pm", "at nine oh five, at fifteen forty-five and three P M"),
        ("Meet at 3PM, or 11AM.", "Meet at three P M, or eleven A M."),
        ("Come at 3:30 pm. Then eat at 6 p.m. with us", "Come at three thirty P M. Then eat at six P M with us"),
        ("Dr. Smith lives on Elm St. now", "Doctor Smith lives on Elm Street now"),
        ("She came 2nd, he 21st.", "She came second, he twenty-first."),
        ("1,200 km", "one thousand two hundred kilometers"),
        ("1 mile, 60 mph, 8 GB, 5°C", "one mile, sixty miles per hour, eight gigabytes, five degrees Celsius"),
        ("fruit, e.g. apples, i.e. food, approx. 5", "fruit, for example apples, that is food, approximately five"),
        ("cats, dogs, etc. Then", "cats, dogs, et cetera. Then"),
        ("50% and 3.5 %", "fifty percent and three point five percent"),
        ("Call +1 555-123-4567", "Call plus one, five five five, one two three, four five six seven"),
        ("Call 1-800-555-1234.", "Call one, eight zero zero, five five five, one two three four."),  # was "one-eight"
        ("AT&T and R&D", "A T and T and R and D"),
        ("NASA and the FBI use HTML", "NASA and the F B I use H T M L"),
        # a spelled acronym's letters are words of their own: a hyphen beside it joins no letter to its neighbour
        ("Hello from F5-TTS on RunPod.", "Hello from F5 T T S on RunPod."),
        ("GPT-4, USB-C, X-MEN, TTS-based, the U.S.-based", "G P T four, U S B C, X M E N, T T S based, the U S based"),
        ("NASA-funded, a well-known FAQ - yes", "NASA-funded, a well-known F A Q - yes"),
        ("Go to https://www.example.com/docs.", "Go to w w w dot example dot com slash docs."),
        ("Mail john.doe@example.com now", "Mail john dot doe at example dot com now"),
        ("In 1999 and on 2024-03-15", "In nineteen ninety-nine and on March fifteenth, twenty twenty-four"),
        ("March 15, 2024", "March fifteenth, twenty twenty-four"),
        ("you may 3 times, since 2010", "you may three times, since twenty ten"),
        ("15/03/2024 and 03/04/2024", "March fifteenth, twenty twenty-four and March fourth, twenty twenty-four"),
        ("a+b=c, #1, -5 and 007", "a plus b equals c, number one, minus five and zero zero seven"),
        ("version 1.2.3", "version one dot two dot three"),
        ("1,205 is no year, 1205 is", "one thousand two hundred five is no year, twelve oh-five is"),
        ("Henry VIII met the U.S. Army", "Henry VIII met the U S Army"),
        ("World War II, Henry IV and Louis XIV", "World War II, Henry IV and Louis XIV"),  # Roman numerals kept
        ("He lives on Elm St.", "He lives on Elm Street"),
        ("Turn onto Mulholland Dr. now", "Turn onto Mulholland Drive now"),
        ("Visa 4222 2222 2222 2", "Visa four two two two, two two two two, two two two two, two"),  # 13 digits
        ("ALL OF THIS IS SHOUTED", "ALL OF THIS IS SHOUTED"),
        ("the 1990s and '80s, 3/4 cup", "the nineteen nineties and eighties, three quarters cup"),
        ("It was -5°C, open 24/7", "It was minus five degrees Celsius, open twenty-four/seven"),
        ("Nothing to change here, really!", "Nothing to change here, really!"),
        ("Doors at 24:30, lunch 13:05, up at 00:15", "Doors at twenty-four thirty, lunch thirteen oh five, up at zero fifteen"),
        ("She ran 1:30:00, he 9:05:30.", "She ran one hour and thirty minutes, he nine hours five minutes and thirty seconds."),
        ("a 45:30 clip, 0:00:05 in, at 10:30:15 pm",
         "a forty-five minutes and thirty seconds clip, five seconds in, at ten hours thirty minutes and fifteen seconds P M"),
        ("Card 0042-7781-9930-1122.", "Card zero zero four two, seven seven eight one, nine nine three zero, one one two two."),
        ("Pay with 4111 1111 1111 1111 or 3782 822463 10005",
         "Pay with four one one one, one one one one, one one one one, one one one one or three seven eight two, "
         "eight two two four six three, one zero zero zero five"),
    ],
    "fr": [
        ("Il a payé 4,99 €.", "Il a payé quatre euros quatre-vingt-dix-neuf centimes."),
        ("Le 1er mai, la 1re fois, le 2e jour", "Le premier mai, la première fois, le deuxième jour"),
        ("M. Dupont et Mme Curie", "Monsieur Dupont et Madame Curie"),
        ("1\u00a0200 km à 15h45", "mille deux cents kilomètres à quinze heures quarante-cinq"),
        ("50 % et 3,5 kg", "cinquante pour cent et trois virgule cinq kilos"),
        ("le 14/07/1789", "le quatorze juillet mille sept cent quatre-vingt-neuf"),
        ("1 h et 1 £, note 15: 15h", "une heure et une livre, note quinze: quinze heures"),
        ("en 1:30:00 et 0:01:01", "en une heure et trente minutes et une minute et une seconde"),
        ("des fruits, p. ex. des pommes", "des fruits, par exemple des pommes"),
        ("0,5 kg et 1,5 km", "zéro virgule cinq kilo et un virgule cinq kilomètre"),  # singular below two
        ("la 1ère fois", "la première fois"),
    ],
    "de": [
        ("Er zahlte 4,99 €.", "Er zahlte vier Euro neunundneunzig Cent."),
        ("Am 15. März um 15:45 Uhr", "Am fünfzehnten März um fünfzehn Uhr fünfundvierzig"),
        ("1.200 km und 3,5 kg", "eintausendzweihundert Kilometer und drei Komma fünf Kilogramm"),
        ("Hr. Müller und Fr. Schmidt", "Herr Müller und Frau Schmidt"),
        ("Obst, z.B. Äpfel, usw.", "Obst, zum Beispiel Äpfel, und so weiter."),
        ("1 €, 50 % und 1.200.000", "ein Euro, fünfzig Prozent und eine Million zweihunderttausend"),
        ("der 3. Oktober", "der dritte Oktober"),
        ("am 15.03.2024", "am fünfzehnten März zweitausendvierundzwanzig"),
        ("-5 °C", "minus fünf Grad Celsius"),
        ("nach 9:05:30 und 24:30", "nach neun Stunden fünf Minuten und dreißig Sekunden und vierundzwanzig Uhr dreißig"),
        ("Karte 4111 1111 1111 1111", "Karte vier eins eins eins, eins eins eins eins, eins eins eins eins, eins eins eins eins"),
        # "8.30 Uhr" and a date without its year read "acht Komma drei null", "fünfzehn Komma null drei"
        ("Am 15.03. um 8.30 Uhr.", "Am fünfzehnten März um acht Uhr dreißig."),
        ("Vom 1.3. bis 15.3. zu, ab 2.4. offen", "Vom ersten März bis fünfzehnten März zu, ab zweiten April offen"),
    ],
    "es": [
        ("Pagó 4,99 €.", "Pagó cuatro euros noventa y nueve céntimos."),
        ("El Sr. García y la Dra. López", "El señor García y la doctora López"),
        ("el 2º puesto y la 1ª vez", "el segundo puesto y la primera vez"),
        ("el 15/03/2024", "el quince de marzo de dos mil veinticuatro"),
        ("1.200 km, 50 % y 1 £", "mil doscientos kilómetros, cincuenta por ciento y una libra"),
        ("a las 15:45", "a las quince y cuarenta y cinco"),
        ("en 1:01:01", "en una hora un minuto y un segundo"),
    ],
    "it": [
        ("Ha pagato 4,99 €.", "Ha pagato quattro euro novantanove centesimi."),
        ("Il Sig. Rossi e il Dott. Bianchi", "Il signor Rossi e il dottor Bianchi"),
        ("il 2º posto, il 01/05/2024", "il secondo posto, il primo maggio duemilaventiquattro"),
        ("alle 15:45, 1.200 km", "alle quindici e quarantacinque, milleduecento chilometri"),
        ("il 50% e 1 km", "il cinquanta per cento e un chilometro"),
        ("frutta, ecc.", "frutta, eccetera."),
        ("in 1:30:00", "in un'ora e trenta minuti"),
    ],
    "pt": [
        ("Pagou R$ 4,99.", "Pagou quatro reais noventa e nove centavos."),
        ("O Sr. Silva e a Dra. Costa", "O senhor Silva e a doutora Costa"),
        ("a 2ª vez e o 3º lugar", "a segunda vez e o terceiro lugar"),
        ("1.200 km e 1 £", "mil e duzentos quilômetros e uma libra"),
        ("às 15:45, 50 %", "às quinze e quarenta e cinco, cinquenta por cento"),
        ("em 15/03/2024", "em quinze de março de dois mil e vinte e quatro"),
        ("em 1:00:30", "em uma hora e trinta segundos"),
    ],
}


@pytest.mark.parametrize(("language", "written", "spoken"),
                         [(lang, w, s) for lang, cases in CASES.items() for w, s in cases])
def test_each_language_says_what_is_written(language, written, spoken):
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "Balance: -$5.50.", "Balance: minus five dollars fifty cents."),
    ("en", "a refund of $-5 and -5$", "a refund of minus five dollars and minus five dollars"),
    ("en", "(-£2)", "(minus two pounds)"),
    ("en", "Only $.50, or -$.99.", "Only fifty cents, or minus ninety-nine cents."),
    ("fr", "Solde : -5,50 €", "Solde : moins cinq euros cinquante centimes"),
    ("de", "Saldo -5 € und -€5", "Saldo minus fünf Euro und minus fünf Euro"),
])
def test_a_negative_amount_of_money_keeps_its_sign_and_its_currency(language, written, spoken):
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize("language", ["en", "fr", "de", "es", "it", "pt"])
def test_an_address_with_a_superscript_digit_is_read(language):
    """"²" is a digit to str.isdigit() but not to int(): an address holding one is read, not a crash."""
    norm = normalize("See https://example.com/area-² or a@b.eu1²", language)
    assert "²" in norm.spoken and "example" in norm.spoken
    assert normalize(norm.spoken, language).spoken == norm.spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("Meet me at 3pm.", "Meet me at three P M."),
    ("See you at 5 p.m. Then we eat.", "See you at five P M. Then we eat."),
    ("Doors open at 3:30 pm. Bring a friend", "Doors open at three thirty P M. Bring a friend"),
    ("Doors close at 5 P.M. Bye", "Doors close at five P M. Bye"),
    ("at 5 p.m. we eat", "at five P M we eat"),
])
def test_a_time_that_ends_a_sentence_keeps_the_sentence_end(written, spoken):
    norm = normalize(written, "en")
    assert norm.spoken == spoken
    assert normalize(spoken, "en").spoken == spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("Revenue grew to $1.2B.", "Revenue grew to one point two billion dollars."),
    ("a £1m deal and $100k", "a one million pounds deal and one hundred thousand dollars"),
    ("up 1.2x, or 1.2B units", "up 1.2x, or 1.2B units"),  # glued tokens stay whole, never "one" + ".2x"
])
def test_a_number_is_never_read_short_of_its_decimals(written, spoken):
    norm = normalize(written, "en")
    assert norm.spoken == spoken
    assert normalize(spoken, "en").spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "Mr. and Mrs. Smith", "Mister and Missus Smith"),
    ("en", "Thanks. Dr. & Mrs. Jones came.", "Thanks. Doctor and Missus Jones came."),
    ("en", "with Prof. and Dr. Lee", "with Professor and Doctor Lee"),
    ("en", "He lives on Elm St. and Dr. Smith too", "He lives on Elm Street and Doctor Smith too"),  # a street
    ("en", "When Dr. and Mrs. Smith arrived", "When Doctor and Missus Smith arrived"),  # capital: starts a sentence
    ("en", "Visit Dr. and Mrs. Jones", "Visit Doctor and Missus Jones"),
    ("en", "Hi.\nWhen Dr. and Mrs. Jones came! Then St. and Dr. Lee", "Hi.\nWhen Doctor and Missus Jones came! "
     "Then Saint and Doctor Lee"),
    ("en", "Go to 5 Elm St. and Dr. Smith", "Go to five Elm Street and Doctor Smith"),
    ("fr", "M. et Mme Dupont", "Monsieur et Madame Dupont"),
    ("de", "Hr. und Fr. Müller", "Herr und Frau Müller"),
    ("es", "Sr. y Sra. García", "señor y señora García"),
    ("it", "Sig. e Sig.ra Rossi", "signor e signora Rossi"),
])
def test_a_title_joined_by_and_to_another_is_a_title(language, written, spoken):
    """"Dr. and Mrs. Jones" was "Drive and Missus Jones" and "Mr. and Mrs. Smith" kept its "Mr.": the lowercase
    "and" after the first title made it a street, or left it as written. A sentence's first word is capitalised
    for starting it, no street's name: "When Dr. and Mrs. Smith arrived" was "When Drive and Missus Smith"."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "the 1900s and the 1800s", "the nineteen hundreds and the eighteen hundreds"),
    ("en", "in 1900, since 1800, 1800-1900", "in nineteen hundred, since eighteen hundred, eighteen hundred to nineteen hundred"),
    ("en", "on 1/1/1900", "on January first, nineteen hundred"),
    ("en", "1900 people", "one thousand nine hundred people"),  # nothing says it is a year: a count
    ("de", "am 01.01.1900", "am ersten Januar neunzehnhundert"),
])
def test_a_round_hundred_is_a_year_where_the_text_says_it_is_one(language, written, spoken):
    """"the 1900s" was "the one thousand nine hundreds", and a date in 1900 "… one thousand nine hundred"."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("it", "Auguri per il 1° gennaio!", "Auguri per il primo gennaio!"),
    ("es", "el 1° de mayo, a 30°", "el primero de mayo, a treinta grados"),
    ("pt", "dia 1° de maio", "dia primeiro de maio"),
])
def test_a_degree_sign_before_a_month_is_an_ordinal(language, written, spoken):
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("fr", "1 200 €", "mille deux cents euros"),
    ("fr", "1 200 000 habitants", "un million deux cent mille habitants"),
    ("fr", "1\u202f200,50 €", "mille deux cents euros cinquante centimes"),
    ("es", "1 200 000 habitantes", "un millón doscientos mil habitantes"),
    ("pt", "1 200 euros", "mil e duzentos euros"),
    ("fr", "12 3456", "douze trois mille quatre cent cinquante-six"),  # a group is exactly three digits
    ("en", "3 100 200", "three one hundred two hundred"),  # English groups with commas: a list
    ("de", "3 100", "drei einhundert"),
])
def test_groups_of_three_digits_after_a_space_are_thousands_where_that_is_the_norm(language, written, spoken):
    assert normalize(written, language).spoken == spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("1990-2000", "nineteen ninety to two thousand"),
    ("From 2010–2015, we grew.", "From twenty ten to twenty fifteen, we grew."),
    ("pages 10-20", "pages ten to twenty"),  # a range of numbers too (test_numeric_ranges_are_read_as_ranges)
    ("The shop closes at 24:00.", "The shop closes at twenty-four hundred."),
])
def test_english_year_ranges_and_the_end_of_the_day(written, spoken):
    assert normalize(written, "en").spoken == spoken
    assert normalize(spoken, "en").spoken == spoken


RANGES = {
    "en": [
        ("It takes 5-10 minutes.", "It takes five to ten minutes."),
        ("pages 10–20, ages 3-5", "pages ten to twenty, ages three to five"),
        ("at 20-25°C or 20-25 °C", "at twenty to twenty-five degrees Celsius or twenty to twenty-five degrees Celsius"),
        ("$5-$10, $5-10 and $1-$2", "five to ten dollars, five to ten dollars and one to two dollars"),
        ("$5-$7.50, $4.99-$9.99", "five dollars to seven dollars fifty cents, four dollars ninety-nine cents to nine "
                                  "dollars ninety-nine cents"),
        ("$5-10 million, $5M-$10M", "five to ten million dollars, five million to ten million dollars"),
        ("10-20% and 10%-20%", "ten to twenty percent and ten to twenty percent"),
        ("5-10km, 5km-10km, 1.5-2.5 kg", "five to ten kilometers, five to ten kilometers, one point five to two point "
                                         "five kilograms"),
        ("1,000-2,000 and 100-1000", "one thousand to two thousand and one hundred to one thousand"),
        ("-10-5°C", "minus ten to five degrees Celsius"),
        ("open 9:00-17:00, 9am-5pm, 3-5pm", "open nine o'clock to seventeen hundred, nine A M to five P M, three to "
                                            "five P M"),
        ("between 5-10 people", "between five and ten people"),
        ("March 5-10", "March fifth to tenth"),
        ("1990-1995, 1990-95, 2020–21, 2004-05", "nineteen ninety to nineteen ninety-five, nineteen ninety to "
                                                 "ninety-five, twenty twenty to twenty-one, two thousand four to oh-five"),
        ("(5-10)", "(five to ten)"),
        ("FROM 5-10 MINUTES", "FROM FIVE TO TEN MINUTES"),
    ],
    "fr": [
        ("5-10 minutes", "cinq à dix minutes"),
        ("20-25°C, 10-20 %", "vingt à vingt-cinq degrés, dix à vingt pour cent"),
        ("5-10 €, 1-2 £, 21-25 h", "cinq à dix euros, une à deux livres, vingt et une à vingt-cinq heures"),
        ("1,5-2,5 km", "un virgule cinq à deux virgule cinq kilomètres"),
        ("de 9h-17h, 9-17h", "de neuf heures à dix-sept heures, neuf à dix-sept heures"),
        ("entre 5-10 personnes", "entre cinq et dix personnes"),
        ("1990-1995", "mille neuf cent quatre-vingt-dix à mille neuf cent quatre-vingt-quinze"),
    ],
    "de": [
        ("5-10 Minuten", "fünf bis zehn Minuten"),
        ("20-25°C, 1-2 kg, 1-2 €", "zwanzig bis fünfundzwanzig Grad Celsius, ein bis zwei Kilogramm, ein bis zwei Euro"),
        ("9:00-17:00 Uhr, 9-17 Uhr", "neun Uhr bis siebzehn Uhr, neun bis siebzehn Uhr"),
        ("von 8.30-9.30 Uhr", "von acht Uhr dreißig bis neun Uhr dreißig"),
        ("zwischen 5-10 Personen", "zwischen fünf und zehn Personen"),
        ("1.000-2.000 Euro", "eintausend bis zweitausend Euro"),
    ],
    "es": [
        ("5-10 minutos", "cinco a diez minutos"),
        ("20-25°C, 1-2 £", "veinte a veinticinco grados, una a dos libras"),
        ("entre 5-10 personas", "entre cinco y diez personas"),
        ("de 9:00-17:00", "de nueve en punto a diecisiete en punto"),
    ],
    "it": [
        ("5-10 minuti", "cinque a dieci minuti"),
        ("da 5-10 €, 1-2 £", "da cinque a dieci euro, una a due sterline"),
        ("tra 5-10 persone, fra 1-2 km", "tra cinque e dieci persone, fra uno e due chilometri"),
    ],
    "pt": [
        ("5-10 minutos", "cinco a dez minutos"),
        ("R$ 5-10, 1-2 £", "cinco a dez reais, uma a duas libras"),
        ("entre 5-10 pessoas", "entre cinco e dez pessoas"),
    ],
}


@pytest.mark.parametrize(("language", "written", "spoken"),
                         [(lang, w, s) for lang, cases in RANGES.items() for w, s in cases])
def test_numeric_ranges_are_read_as_ranges(language, written, spoken):
    """Two numbers joined by a hyphen or an en dash, the second the larger: "to" between them in the language,
    a unit, currency or percent sign said once, after the last. "20-25°C" was "twenty-twenty-five degrees", the
    year 2025."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "won 3-2, open 9-5, 1-1", "won three-two, open nine-five, one-one"),  # the second no larger: a score
    ("en", "22:00-06:00", "twenty-two hundred-six hundred"),
    ("en", "5-10-15 and 1-800-FLOWERS", "five-ten-fifteen and one-eight hundred-FLOWERS"),  # a longer chain
    ("en", "3-5-year-olds", "three-five-year-olds"),
    ("en", "Call 555-1234, 1-800-555-1234", "Call five hundred fifty-five-twelve thirty-four, one, eight zero zero, "
                                            "five five five, one two three four"),
    ("en", "on 2026-12-07", "on December seventh, twenty twenty-six"),
    ("en", "Card 0042-7781-9930-1122", "Card zero zero four two, seven seven eight one, nine nine three zero, one one "
                                       "two two"),
    ("en", "5 - 10, 5—10, 05-10, +1-5", "five - ten, five—ten, zero five-ten, plus one-five"),  # pauses, codes
    ("en", "5°-10°C, $5-€10", "five degrees -ten degrees Celsius, five dollars- ten euros"),  # different kinds
    ("en", "1:30:00-2:00:00", "one hour and thirty minutes-two hours"),  # durations
    ("en", "-5-3/4 and 1.5-2.5.3", "minus five-three quarters and one point five-two dot five dot three"),
    ("fr", "3-2 et 06-12-34-56-78", "trois-deux et zéro six, un deux, trois quatre, cinq six, sept huit"),
    ("de", "2019-2020-2021", "zweitausendneunzehn, zweitausendzwanzig, zweitausendeinundzwanzig"),
    ("es", "2020–21", "dos mil veinte–veintiuno"),  # abbreviated years: English only
])
def test_what_is_no_range_is_read_as_before(language, written, spoken):
    """A score, a working day ("9-5"), a phone number, an ISO date, a card number, a chain of hyphens, ends of
    different kinds: two numbers and a dash that no one says "to" for."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)


_SIX = ["en", "fr", "de", "es", "it", "pt"]


@settings(max_examples=200, deadline=None)
@given(language=st.sampled_from(_SIX), a=st.integers(0, 10**7), b=st.integers(0, 10**7),
       dash=st.sampled_from(["-", "–"]), after=st.sampled_from(["", ".", ",", " today"]))
@example(language="en", a=20, b=25, dash="-", after="")
@example(language="en", a=555, b=1234, dash="-", after="")  # a local phone number: two numbers
@example(language="en", a=1990, b=95, dash="-", after="")  # an abbreviated year range
def test_a_range_says_both_numbers_in_order_with_its_word_between(language, a, b, dash, after):
    """The reading of "a-b" is the reading of a, the language's "to", the reading of b, where b is the larger;
    otherwise no word is said between them (the two are read as before: as two numbers and a dash, or, where
    their digits make one, as a phone number: "100000-1000")."""
    from f5_worker.text.languages import RULES
    from f5_worker.text.numbers import abbreviated_year

    said = normalize(f"Read {a}{dash}{b}{after}", language).spoken
    alone = [normalize(str(n), language).spoken for n in (a, b)]
    phone = dash == "-" and len(str(a)) == 3 and len(str(b)) == 4 and not (a % 10 == 0 and b % 100 == 0)
    if language == "en" and all(1100 <= n <= 2099 for n in (a, b)) and a < b:  # years: nineteen ninety to …
        alone = [normalize(f"in {n}", "en").spoken.removeprefix("in ") for n in (a, b)]
    if abbreviated_year(str(a), str(b), language):
        assert said.startswith(f"Read {normalize(f'in {a}', 'en').spoken.removeprefix('in ')} to "), said
    elif a < b and not phone:
        assert said == f"Read {alone[0]} {RULES[language].range_to} {alone[1]}{after}", said
    else:
        assert f" {RULES[language].range_to} " not in said, said
        assert said == f"Read {alone[0]}{dash}{alone[1]}{after}" or "," in said.removesuffix(after), said


@pytest.mark.parametrize(("written", "spoken"), [
    ("Call 555-1234 or +1 555-123-4567", "Call five hundred fifty-five-twelve thirty-four or plus one, five five five, "
                                         "one two three, four five six seven"),
    ("on 2024-05-01, pages 10-20, 1990-2000", "on May first, twenty twenty-four, pages ten to twenty, nineteen ninety "
                                              "to two thousand"),
    ("1234 5678 and 1111 2222 3333", "twelve thirty-four five thousand six hundred seventy-eight and eleven eleven "
                                     "two thousand two hundred twenty-two three thousand three hundred thirty-three"),
    ("in 1990 2000 2010 2020", "in nineteen ninety two thousand two thousand ten two thousand twenty"),  # years
])
def test_card_numbers_leave_phones_dates_ranges_and_lists_of_years_as_they_were(written, spoken):
    assert normalize(written, "en").spoken == spoken


@pytest.mark.parametrize(("lang", "written", "spoken"), [
    ("en", "Seasons 2019-2020-2021-2022.", "Seasons twenty nineteen, twenty twenty, twenty twenty-one, twenty twenty-two."),
    ("en", "in 2019–2020–2021", "in twenty nineteen, twenty twenty, twenty twenty-one"),  # en dashes
    ("en", "1990-2000-2010", "nineteen ninety, two thousand, twenty ten"),  # a phone number's shape before
    ("en", "2019-2022 and 2010–2015", "twenty nineteen to twenty twenty-two and twenty ten to twenty fifteen"),
    ("en", "2022-2019-2020-2021", "two zero two two, two zero one nine, two zero two zero, two zero two one"),
    ("de", "2019-2020-2021-2022",
     "zweitausendneunzehn, zweitausendzwanzig, zweitausendeinundzwanzig, zweitausendzweiundzwanzig"),
])
def test_increasing_years_joined_by_hyphens_are_a_list_of_years(lang, written, spoken):
    """Not a card number read digit by digit; not "to" between each two either (a range has two ends). Out
    of order they are no list of years, and stay digit groups."""
    assert normalize(written, lang).spoken == spoken
    assert normalize(spoken, lang).spoken == spoken


@pytest.mark.parametrize(("lang", "written", "spoken"), [
    ("en", "1000 2000 3000 4000", "one thousand two thousand three thousand four thousand"),
    ("en", "10000 20000 30000", "ten thousand twenty thousand thirty thousand"),
    ("de", "1500 2500 3500 4500", "eintausendfünfhundert zweitausendfünfhundert dreitausendfünfhundert "
                                  "viertausendfünfhundert"),
    # cards and accounts stay digit groups: a group not round, one with a leading zero, or hyphens between
    ("en", "4111 1111 1111 1111", "four one one one, one one one one, one one one one, one one one one"),
    ("en", "3782 822463 10005", "three seven eight two, eight two two four six three, one zero zero zero five"),
    ("en", "4000 0000 0000 0000", "four zero zero zero, zero zero zero zero, zero zero zero zero, zero zero zero zero"),
    ("en", "1000-2000-3000-4000", "one zero zero zero, two zero zero zero, three zero zero zero, four zero zero zero"),
    ("de", "Konto DE89 3704 0044 0532 0130 00", "Konto DE89 drei sieben null vier, null null vier vier, "
                                                "null fünf drei zwei, null eins drei null, null null"),
])
def test_round_numbers_written_apart_are_a_list_of_numbers_not_a_card(lang, written, spoken):
    assert normalize(written, lang).spoken == spoken


@pytest.mark.parametrize(("lang", "written", "spoken"), [
    ("fr", "en 1:21:21, à 21:00", "en une heure vingt et une minutes et vingt et une secondes, à vingt et une heures"),
    ("es", "en 21:21:00 y 21 £", "en veintiuna horas y veintiún minutos y veintiuna libras"),
    ("pt", "em 22:00:00, às 2:00 e 1:00, 22 £", "em vinte e duas horas, às duas horas e uma hora, vinte e duas libras"),
])
def test_the_last_word_of_a_number_agrees_with_the_noun_after_it(lang, written, spoken):
    """Not only "one": "vingt et une heures", "veintiún minutos", "vinte e duas horas"."""
    assert normalize(written, lang).spoken == spoken


@pytest.mark.parametrize(("lang", "written", "spoken"), [
    ("de", "um 1 Uhr, 1:00 Uhr, 01:05 Uhr und 13:01 Uhr",
     "um ein Uhr, ein Uhr, ein Uhr fünf und dreizehn Uhr eins"),  # "eins Uhr" is wrong; minutes stay "eins"
    ("de", "um 1:00:30 Uhr, um 21 Uhr", "um ein Uhr und dreißig Sekunden, um einundzwanzig Uhr"),
    ("fr", "à 1h, à 1:00, à 21h", "à une heure, à une heure, à vingt et une heures"),
    ("es", "a la 1:00, a la 1:30, a las 21:00", "a la una en punto, a la una y treinta, a las veintiuna en punto"),
    ("it", "all'1:00, all'1:30, alle 21:00", "all'una in punto, all'una e trenta, alle ventuno in punto"),
    ("pt", "à 1:00, à 1:30", "à uma hora, à uma e trinta"),
])
def test_one_oclock_is_said_as_each_language_says_the_hour(lang, written, spoken):
    """The hour is said before its noun, said or understood: ein Uhr, une heure, la una (hora), l'una (ora),
    uma hora; never the number alone ("eins Uhr", "la uno")."""
    assert normalize(written, lang).spoken == spoken
    assert normalize(spoken, lang).spoken == spoken


def test_a_german_time_with_seconds_and_uhr_is_a_time_of_day():
    """"9:05:30 Uhr" is read as a clock, not as a duration with "Uhr" left after it."""
    assert normalize("Um 9:05:30 Uhr beginnt es, um 12:00:01 Uhr endet es.", "de").spoken == \
        "Um neun Uhr fünf und dreißig Sekunden beginnt es, um zwölf Uhr und eine Sekunde endet es."


@pytest.mark.parametrize("written", ["at 10:30:15pm.", "at 10:30:15PM, then", "at 10:30:15 pm", "at 10:30:15p.m."])
def test_seconds_with_am_or_pm_glued_are_read_like_those_written_apart(written):
    said = normalize(written, "en").spoken
    assert said.startswith("at ten hours thirty minutes and fifteen seconds P M"), said


def test_minutes_past_24_are_a_duration_in_english_only():
    """"45:30" is a race time in English; in German "28:25" is a handball score far more often."""
    assert normalize("a 45:30 run", "en").spoken == "a forty-five minutes and thirty seconds run"
    assert "Minuten" not in normalize("Das Spiel endete 28:25.", "de").spoken


@settings(max_examples=80, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59), zero=st.booleans())
@example(hour=9, minute=10, zero=False)
@example(hour=12, minute=0, zero=False)
def test_an_english_clock_says_oh_before_one_digit_minutes_and_hundred_for_a_24_hour_full_hour(hour, minute, zero):
    """NeMo's reading: "9:05" nine oh five, "9:10" nine ten; "12:00" twelve o'clock, "13:00" and "09:00"
    thirteen hundred, oh nine hundred (the 24-hour clock)."""
    written = f"{hour:02d}:{minute:02d}" if zero else f"{hour}:{minute:02d}"
    said = normalize(f"Meet at {written} today", "en").spoken
    assert (" oh " in said) == (1 <= minute <= 9), said
    if minute == 0:
        assert said.endswith("hundred today" if hour > 12 or written.startswith("0") else "o'clock today"), said


@settings(max_examples=80, deadline=None)
@given(day=st.dates(dt.date(1100, 1, 1), dt.date(2099, 12, 31)), form=st.sampled_from(["{:%Y-%m-%d}", "{:%m/%d/%Y}"]))
@example(day=dt.date(2024, 12, 31), form="{:%m/%d/%Y}")
def test_every_day_of_the_year_is_read_as_a_date(day, form):
    from f5_worker.text.numbers import say_ordinal

    said = normalize(f"Due {form.format(day)}.", "en").spoken
    assert said.startswith(f"Due {day:%B} {say_ordinal(str(day.day), 'en')}, "), said
    assert not re.search(r"[\d/]", said), said


@pytest.mark.parametrize("language", ["fr", "de", "es", "it", "pt"])
def test_outside_english_a_date_is_day_first(language):
    """"03/04/2024" is the third of April in every language but English."""
    from f5_worker.text.languages import RULES

    said = normalize("03/04/2024", language).spoken
    assert RULES[language].months[3] in said and RULES[language].months[2] not in said, said


_TWO = st.integers(0, 59).map("{:02d}".format)
_CLOCKS = st.one_of(
    st.builds("{}:{}".format, st.integers(0, 24).map(str) | st.integers(0, 24).map("{:02d}".format), _TWO),
    st.builds("{}:{}:{}".format, st.integers(0, 99).map(str), _TWO, _TWO),
    st.builds("{}:{}".format, st.integers(25, 99).map(str), _TWO))


def _a_list_of_years_or_round_numbers(card: str) -> bool:
    """Groups that are years from 1100 to 2099 in increasing order ("2019-2020-2021-2022"), or round numbers
    written apart ("1000 2000 3000 4000"), are a list, read as years or numbers (with their hyphens, "twenty
    twenty-one"), not a card: such shapes are not what this property is about."""
    groups = re.split(r"[ -]", card)
    years = [int(g) for g in groups if re.fullmatch(r"1[1-9]\d\d|20\d\d", g)]
    in_order = len(years) == len(groups) and all(a < b for a, b in zip(years, years[1:]))
    round_apart = " " in card and all(g[0] != "0" and g.endswith("00") for g in groups)
    return in_order or round_apart


_CARDS = st.builds(lambda groups, sep: sep.join(groups),
                   st.lists(st.integers(0, 9999).map("{:04d}".format), min_size=4, max_size=5),
                   st.sampled_from(" -")).filter(lambda card: not _a_list_of_years_or_round_numbers(card))


@settings(max_examples=150, deadline=None)
@given(shape=st.one_of(_CLOCKS, _CARDS), after=st.sampled_from(["", ".", ",", " today."]))
@example(shape="9:05:30", after=".")
@example(shape="0042-7781-9930-1122", after="")
def test_no_colon_hyphen_or_digit_of_a_time_or_a_card_number_is_left_in_english(shape, after):
    norm = normalize(f"At {shape}{after}", "en")
    assert not re.search(r"[\d:]", norm.spoken), norm.spoken
    if "-" in shape or " " in shape:  # a card: digit by digit, nothing like "twenty-four" either
        assert "-" not in norm.spoken, norm.spoken
    assert_consistent(norm)
    assert normalize(norm.spoken, "en").spoken == norm.spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("今天有3个故事", "今天有three个故事"),  # no case at all: not shouted
    ("I HAVE 3 CATS", "I HAVE THREE CATS"),
])
def test_only_capitals_are_shouted(written, spoken):
    assert normalize(written, "en").spoken == spoken


def test_language_tags_and_other_languages():
    assert normalize("$4.99", "en-US").spoken == normalize("$4.99", "en").spoken
    assert normalize("2ª vez", "pt-BR").spoken == "segunda vez"
    assert normalize("У меня 25 яблок и 3,5 кг", "ru").spoken == "У меня двадцать пять яблок и три целых пять десятых кг"
    assert normalize("25個", "ja").spoken == "二十五個"
    # num2words does not know Chinese, nor an invented tag: nothing changes
    assert normalize("我有25个苹果 Dr. Smith", "zh").spoken == "我有25个苹果 Dr. Smith"
    assert normalize("$5 & 42", "xx").rewrites == ()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, language=LANGUAGES)
@example(text="$4.99 3:30 pm", language="en")
def test_rewrites_are_ordered_and_the_rest_is_copied_unchanged(text, language):
    norm = normalize(text, language)
    assert norm.written == text
    assert_consistent(norm)
    assert normalize(norm.spoken, language).spoken == norm.spoken  # idempotent


def assert_consistent(norm: NormalizedText) -> None:
    """Rewrites ordered, within bounds, the text between them the same in both; every spoken word maps
    back inside the text as written."""
    text = norm.written
    rebuilt, at_w, at_s = [], 0, 0
    for r in norm.rewrites:
        assert at_w <= r.written_start < r.written_end <= len(text)
        assert at_s <= r.spoken_start <= r.spoken_end <= len(norm.spoken)
        assert text[at_w:r.written_start] == norm.spoken[at_s:r.spoken_start]
        rebuilt += [text[at_w:r.written_start], norm.spoken[r.spoken_start:r.spoken_end]]
        at_w, at_s = r.written_end, r.spoken_end
    assert text[at_w:] == norm.spoken[at_s:]
    assert "".join(rebuilt) + text[at_w:] == norm.spoken
    for s, e in token_spans(norm.spoken):
        ws, we = norm.to_written(s, e)
        assert 0 <= ws <= we <= len(text)
        assert ws < we or not text


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "Great job 👍 see you 😀!", "Great job  see you !"),
    ("en", "Family 👨\u200d👩\u200d👧\u200d👦, flag 🏳\ufe0f\u200d🌈, skin 👍🏽.", "Family , flag , skin ."),
    ("en", "Press 1\ufe0f\u20e3 ✅ now", "Press one  now"),
    ("en", "soft\u00adhyphen, zero\u200bwidth, \ufeffBOM\u200f", "softhyphen, zerowidth, B O M"),
    ("fr", "Bravo 👏 à 5 €", "Bravo  à cinq euros"),
    ("ru", "Привет 👋 2", "Привет  два"),
    ("zh", "你好😀世界", "你好世界"),  # a language the normalizer has no numbers for
])
def test_what_no_one_says_is_left_out_of_what_is_said(language, written, spoken):
    """Emoji (with what joins and dresses them) and invisible typesetting characters reached the model, which
    has none of them in its vocabulary and paced the speech by their UTF-8 bytes: a family emoji, 25 bytes,
    made as long a stretch of noise as a 25-letter word."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "Tom &amp; Jerry&nbsp;&#8212; &quot;hi&quot; &#x1F600;", "Tom and Jerry\u00a0— \"hi\" "),
    ("fr", "5&nbsp;&euro; et Caf&eacute;", "cinq euros et Café"),
    ("en", "AT&T; &nosuchname; and a & b", "A T and T; and nosuchname; and a and b"),  # no such references
    # a control character, a surrogate, past Unicode's last: nothing said (html gives U+FFFD or a C1 control)
    ("en", "a &#0; b&#xD800;&#x110000; &#x81;c &amp;#0; &#xFFFD;", "a  b c  "),
])
def test_html_character_references_are_the_characters_they_stand_for(language, written, spoken):
    """Text taken from a web page keeps its character references: "&amp;" was said "and amp;", "&nbsp;" "and
    nbsp;". Each is the character it stands for, then read as that character is; one that stands for no
    character anyone says ("&#0;", a control character, a surrogate) is left out, as invisible characters are:
    it reached the model as U+FFFD."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "# Welcome\n\nIntro.\n## Step 1\n### Done #5 and C# #tag", " Welcome\n\nIntro.\n Step one\n Done number five and C hash hash tag"),
    ("en", "# # 1 and\n  # 2", " hash one and\n  hash two"),  # one heading's marks; none after a space
    ("de", "# Überblick", " Überblick"),
])
def test_a_markdown_headings_marks_are_not_said(language, written, spoken):
    """Text written by a language model comes in markdown: "# Welcome" was said "hash Welcome". The marks of a
    heading (one to six "#" at the start of a line, then a space) are not said; any other "#" is read as before."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


def test_a_text_that_starts_no_line_has_no_heading_at_its_start():
    """A script's part after a tag on its line ("Press [pause] # to continue") starts its own text, not a line:
    its "#" is said; one after a line break in it is still a heading's mark."""
    norm = normalize("# to continue.\n# Next\n#\ufe0f Last", "en", starts_line=False)
    assert norm.spoken == "hash to continue.\n Next\n Last"
    assert_consistent(norm)


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "𝐇𝐞𝐥𝐥𝐨 from ｆｕｌｌ ｗｉｄｔｈ", "Hello from full width"),
    ("en", "the ofﬁce ﬁle of the 𝐅𝐁𝐈 at 𝟏𝟐:𝟑𝟎", "the office file of the F B I at twelve thirty"),
    ("fr", "Cafe\u0301 cre\u0300me, 𝟓 €", "Café crème, cinq euros"),
    ("ko", "\u1112\u1161\u11ab\u1100\u1173\u11af", "한글"),  # Hangul in its decomposed letters
])
def test_letters_written_in_another_form_are_said_as_the_letters(language, written, spoken):
    """Accents written as combining marks, and fullwidth, mathematical and ligature letters, reached the model
    as written: a sign it rarely or never saw (the letters of "𝐇𝐞𝐥𝐥𝐨" not at all), while the aligner listened
    for the plain word."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "earnings of $0.45, a $.99 app", "earnings of forty-five cents, a ninety-nine cents app"),
    ("en", "$0.01 and $0.00", "one cent and zero dollars"),
    ("en", "$0.002 per token, $1.005", "zero point zero zero two dollars per token, one point zero zero five dollars"),
    ("fr", "0,50 € et 0,001 €", "cinquante centimes et zéro virgule zéro zéro un euros"),
    ("de", "0,99 €", "neunundneunzig Cent"),
    ("es", "0,01 €", "un céntimo"),
    ("pt", "R$ 0,50", "cinquenta centavos"),
])
def test_money_is_said_as_much_as_it_is(language, written, spoken):
    """No whole units: the hundredths alone ("zero dollars forty-five cents" was said, and "$.99" lost its
    point: "$.ninety-nine"); beyond the hundredths, the amount as a number ("$0.002" was "zero dollars zero
    cents")."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("a .5 mm lead", "a point five millimeters lead"),
    ("a .45 caliber, -.5 and .5%", "a point four five caliber, minus point five and point five percent"),
    ("v1.2 and 1..5 stay", "v1.2 and one..five stay"),
])
def test_a_decimal_written_without_its_zero_keeps_its_point(written, spoken):
    """".5 mm" was "five millimeters": the point, unread, was dropped."""
    norm = normalize(written, "en")
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, "en").spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("en", "C++ and C#", "C plus plus and C hash"),
    ("en", "if a==b && c", "if a equals equals b and and c"),
    ("en", "@@ and %%", "at at and percent percent"),
    ("fr", "C++", "C plus plus"),
])
def test_symbols_side_by_side_are_words_one_space_apart(language, written, spoken):
    """Each symbol's word gets a space on the side where it meets another word; two symbols side by side
    got one each ("C plus  plus"), a double space in what the model is given and in ``normalized_text``."""
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


@pytest.mark.parametrize(("language", "written", "spoken"), [
    ("de", "Ave.ca. Nr.", "ave Punkt circa Nummer"),  # "ca" + "." after the address is read again
    ("fr", "x@y.com-n° 5", "x arobase y point com tiret numéro cinq"),
])
def test_a_reading_that_meets_its_neighbour_is_read_again(language, written, spoken):
    norm = normalize(written, language)
    assert norm.spoken == spoken
    assert_consistent(norm)
    assert normalize(spoken, language).spoken == spoken


