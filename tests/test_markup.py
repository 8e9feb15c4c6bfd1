"""Markup in a job's text (text/markup.py): pauses, SSML breaks, voice tags and paragraph breaks parsed into
speech parts and pauses; their bounds, and errors that name the character."""

import re

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.text.markup import BREAK_STRENGTH_S, Pause, PauseRules, SpeechPart, parse_script


def test_every_pause_form_and_its_length():
    text = ('One [pause] two [pause:1.5s] three [pause:250ms] four <break time="1s"/> five '
            "<break time='500ms'/> six <break strength=\"x-strong\"/> seven <break/> eight.\n\nNine.")
    script = parse_script(text)
    pauses = [i.seconds for i in script if isinstance(i, Pause)]
    assert pauses == [0.5, 1.5, 0.25, 1.0, 0.5, BREAK_STRENGTH_S["x-strong"], BREAK_STRENGTH_S["medium"], 0.6]
    said = [text[i.char_start:i.char_end] for i in script if isinstance(i, SpeechPart)]
    assert said == ["One", "two", "three", "four", "five", "six", "seven", "eight.", "Nine."]


def test_the_pause_settings_set_the_lengths_and_bounds():
    rules = PauseRules.of(Settings(pause_s=0.2, paragraph_pause_s=1.0, max_pause_s=2.0, max_total_pause_s=3.5))
    script = parse_script("A [pause] b.\n\nC [pause:2s] d", rules=rules)
    assert [i.seconds for i in script if isinstance(i, Pause)] == [0.2, 1.0, 2.0]
    with pytest.raises(JobError, match="^text: pause of 2.5 s at character 2 is longer than 2 s"):
        parse_script("A [pause:2.5s] b", rules=rules)
    with pytest.raises(JobError, match="^text: pauses add up to 4 s, more than 3.5 s"):
        parse_script("A [pause:2s] b [pause:2s] c", rules=rules)


def test_pauses_in_one_gap_add_up_and_a_written_pause_replaces_the_paragraph_pause():
    script = parse_script("A.\n\n[pause:1s] [pause:2s]\n\nB. [pause:300ms]")
    assert [type(i).__name__ for i in script] == ["SpeechPart", "Pause", "SpeechPart", "Pause"]
    assert script[1].seconds == 3.0 and script[3].seconds == 0.3  # a pause at the end is kept


def test_voice_tags_make_segments_and_other_brackets_are_text():
    text = "Intro [see page 4]. [voice:anna] Hi, 3 < 4. [voice:default] Bye. [voice:anna] Again."
    parts = [i for i in parse_script(text) if isinstance(i, SpeechPart)]
    assert [(text[p.char_start:p.char_end], p.voice, p.segment) for p in parts] == [
        ("Intro [see page 4].", None, 0), ("Hi, 3 < 4.", "anna", 1), ("Bye.", "default", 2), ("Again.", "anna", 3)]
    assert parts[1].voice_at == text.index("[voice:anna]")


@pytest.mark.parametrize("text, error", [
    ("Hello [pause:1.5s and more", "text: unclosed tag at character 6"),
    ("Hi [voice:anna and more", "text: unclosed tag at character 3"),
    ("Well <break time=\"1s\" and on", "text: unclosed tag at character 5"),
    ("Hi </speak and then", "text: unclosed tag at character 3"),
    ("Hey! [paws] then", "text: unknown tag '[paws]' at character 5"),
    ("Ha [laughs] ha", "text: unknown tag '[laughs]' at character 3"),
    ("So <emphasis>this</emphasis>", "text: unknown tag '<emphasis>' at character 3"),
    ("A </break> b", "text: unknown tag '</break>' at character 2"),
    ("Some words here and then [pause:30s] more", "text: pause of 30 s at character 25 is longer than 10 s"),
    ("A <break time=\"12000ms\"/> b", "text: pause of 12 s at character 2 is longer than 10 s"),
    ("A [pause:fast] b", "text: tag '[pause:fast]' at character 2: the length must be like 1.5s or 500ms"),
    ("A <break strength=\"huge\"/> b", "text: <break> at character 2: strength must be one of"),
    ("A [voice:] b", "text: tag '[voice:]' at character 2 names no voice"),
    ("[pause:1s] <break/>", "text: has no words to speak outside its tags"),
    ("A" + " [pause:10s] a" * 7, "text: pauses add up to 70 s, more than 60 s"),
])
def test_markup_errors_name_the_character(text, error):

    with pytest.raises(JobError) as caught:
        parse_script(text)
    assert str(caught.value).startswith(error), str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("A <break time=“3s”/> b", 3.0), ("A <break time=‘2s’/> b", 2.0), ("A <break time=1500ms/> b", 1.5),
])
def test_a_break_time_in_typographic_quotes_or_unquoted_is_read(text, seconds):
    """Pasted from a word processor or written as HTML allows: the length written, never the 0.75 s default."""
    assert [i.seconds for i in parse_script(text) if isinstance(i, Pause)] == [seconds]


@pytest.mark.parametrize(("text", "seconds"), [
    ("A [pause:500MS] b", 0.5), ("A [PAUSE:2S] b", 2.0), ('A <BREAK TIME="1500Ms"/> b', 1.5),
])
def test_a_length_is_read_in_capitals_too(text, seconds):
    """"500MS" is half a second, as "500ms" is: never 500 s, refused as too long."""
    assert [i.seconds for i in parse_script(text) if isinstance(i, Pause)] == [seconds]


@pytest.mark.parametrize(("text", "pauses"), [
    ("Line one.\nLine two.", []), ("Line one.\r\nLine two.", []), ("Line one. \n\tLine two.", []),
    ("Para one.\n\nPara two.", [0.6]), ("Para one.\r\n\r\nPara two.", [0.6]), ("Para one.\n \t\nPara two.", [0.6]),
    ("\n\nOnly words.\n\n\n", []),
])
def test_a_paragraph_is_a_blank_line_between_words(text, pauses):
    """A line break alone (a poem, an address, text wrapped by an editor) is no paragraph and adds no silence;
    a blank line between words is one, and blank lines before the first or after the last words add none."""
    script = parse_script(text)
    assert [i.seconds for i in script if isinstance(i, Pause)] == pauses
    assert " ".join(text[p.char_start:p.char_end] for p in script if isinstance(p, SpeechPart)).split() == text.split()


@pytest.mark.parametrize(("text", "segments"), [
    ("[voice:anna] Hi. [voice:default] Bye.", [0, 1]),
    ("[voice:anna] [voice:default] Hi. [voice:anna] Bye.", [0, 1]),
    ("Hi. [voice:anna] [pause] [voice:default] Bye.", [0, 1]),
])
def test_segments_count_the_voice_runs_that_speak_from_0(text, segments):
    """A switch with no words after it makes no segment: the words' ``segment`` counts runs that are heard."""
    assert [p.segment for p in parse_script(text) if isinstance(p, SpeechPart)] == segments


@pytest.mark.parametrize("text", ['A <break time="3s" foo/> b', "A <break time=3 s/> b"])
def test_a_break_with_words_it_cannot_read_is_refused(text):

    with pytest.raises(JobError, match="<break> at character 2: cannot read"):
        parse_script(text)


@pytest.mark.parametrize(("text", "parts"), [
    ("&nbsp;&#x1F600;", None),
    ("Hi [pause] &#128512; &shy; [pause] there", ["Hi", "there"]),
    ("Hi\n\n&nbsp;\n\nQ&amp;A", ["Hi", "Q&amp;A"]),
])
def test_a_part_of_references_to_what_is_not_said_says_nothing(text, parts):
    """"&nbsp;" has letters, but says nothing: such a part was sampled as an empty text, which failed the job
    with an internal error from the vocoder."""
    if parts is None:
        with pytest.raises(JobError, match="^text: has no letters or digits to speak$"):
            parse_script(text)
        return
    assert [text[p.char_start:p.char_end] for p in parse_script(text) if isinstance(p, SpeechPart)] == parts


@pytest.mark.parametrize("text", ["if x < y then z", "apples < oranges and pears > plums", "a <= b",
                                  "if a<b then", "x <y", "the <tbd", "5<10 and 3<4"])
def test_a_less_than_sign_that_opens_no_tag_is_text(text):
    """As in XML, a tag's name follows "<" directly: "x < y" is written text, never an unclosed tag. Nor is a
    "<" before a name that no ">" closes, unless the name is a tag's we read (as an unknown "[name" is text
    but "[pause" unclosed an error): "if a<b then" was refused as an unclosed tag."""
    assert parse_script(text) == [SpeechPart(0, len(text))]


def test_an_address_or_a_link_in_angle_brackets_is_text():
    """"Ana <ana@example.com>", pasted from an e-mail, was refused as the unknown tag '<ana@example.com>': a tag's
    name ends at a space, "/" or ">", as in XML."""
    text = "Write to Ana <ana@example.com> or see <https://example.com/docs>."
    assert parse_script(text) == [SpeechPart(0, len(text))]
    with pytest.raises(JobError, match="^text: unknown tag '<b>' at character 3"):
        parse_script("So <b>bold</b>")


_WORDS = st.sampled_from(["Hello", "world,", "$42.50", "3rd", "1,000", "Dr.", "it's", "ok.", "%", "7", "café"])


_TAGS = st.sampled_from(["[pause]", "[pause:1s]", "[pause:250ms]", '<break time="300ms"/>', "<break/>",
                         "[voice:default]", "\n\n", " [see 2] "])


@given(st.lists(st.one_of(_WORDS, _TAGS), min_size=1, max_size=14))
@example(["[voice:default]", "Hello", "\n\n", "$42.50"])
def test_parts_are_the_text_as_written_without_its_tags(tokens):
    text = " ".join(tokens)
    if not any(ch.isalnum() for tok in tokens if tok in _WORDS.elements for ch in tok) and "[see 2]" not in text:
        tagged = any(tok in _TAGS.elements and tok.strip() for tok in tokens)  # a blank line is no tag
        with pytest.raises(JobError, match="^text: has no words to speak outside its tags$" if tagged else
                           "^text: has no letters or digits to speak$"):
            parse_script(text)
        return
    script = parse_script(text)
    parts = [i for i in script if isinstance(i, SpeechPart)]
    spoken = " ".join(text[p.char_start:p.char_end] for p in parts)
    assert not re.search(r"\[(pause|voice)|<break", spoken)
    # every character outside the parts is a tag or whitespace: nothing written is lost
    covered = np.zeros(len(text), dtype=bool)
    for p in parts:
        covered[p.char_start:p.char_end] = True
    rest = "".join(ch if not c else " " for ch, c in zip(text, covered))
    leftover = re.sub(r"\[pause(:[^\]]*)?\]|\[voice:[^\]]*\]|<break[^>]*>|\s", "", rest)
    assert not any(ch.isalnum() for ch in leftover), leftover
    starts = [p.char_start for p in parts]
    assert starts == sorted(starts)


def test_pauses_exactly_at_the_total_bound_are_taken_in_whole_milliseconds():
    """Thirty 0.1 s pauses add up to 3.0000000000000013 as floats: at a 3 s bound they were refused as
    "pauses add up to 3 s, more than 3 s"."""
    rules = PauseRules.of(Settings(max_total_pause_s=3.0))
    script = parse_script("Go [pause:100ms] " * 30, rules=rules)
    assert sum(isinstance(i, Pause) for i in script) == 30
    with pytest.raises(Exception, match=r"^text: pauses add up to 3\.1 s, more than 3 s$"):
        parse_script("Go [pause:100ms] " * 31, rules=rules)
    tenths = PauseRules.of(Settings(max_total_pause_s=0.3))
    assert len(parse_script('A <break time="0.1s"/> b <break time="100ms"/> c [pause:.1s] d', rules=tenths)) == 7


def test_a_refused_total_names_the_paragraph_breaks_it_counts():
    rules = PauseRules.of(Settings(paragraph_pause_s=0.75, max_total_pause_s=3.0))
    assert len(parse_script("Para.\n\n" * 5, rules=rules)) == 9  # four breaks, 3 s: at the bound
    with pytest.raises(Exception) as refused:
        parse_script("Para.\n\n" * 6, rules=rules)
    assert str(refused.value) == ("text: pauses add up to 3.75 s, more than 3 s (5 of them are blank lines "
                                  "between paragraphs, 0.75 s each)")
    with pytest.raises(Exception) as refused:
        parse_script("One. [pause:2.5s] Two.\n\nThree.", rules=rules)
    assert str(refused.value).endswith("(1 of them is a blank line between paragraphs, 0.75 s each)")
    with pytest.raises(Exception) as refused:
        parse_script("One. [pause:2s] Two. [pause:2s] Three.", rules=rules)
    assert str(refused.value) == "text: pauses add up to 4 s, more than 3 s"  # no paragraph: none named


@pytest.mark.parametrize("tag", ['<break time="1s" time="9s"/>', "<break strength='weak' STRENGTH='x-strong'/>",
                                 '<break time="2s" strength="weak" time=2s/>'])
def test_a_break_that_gives_an_attribute_twice_is_refused(tag):
    with pytest.raises(Exception) as refused:
        parse_script(f"Wait {tag} now.")
    name = re.search(r"(\w+)=.*\b\1=", tag.lower()).group(1)
    assert str(refused.value) == f"text: <break> at character 5 gives the attribute '{name}' twice"


@pytest.mark.parametrize("length", ["9" * 400 + "s", "1" + "0" * 330 + "ms", "9" * 309 + ".5s"])
def test_a_pause_too_long_to_be_a_number_is_refused_with_the_real_bound(length):
    with pytest.raises(Exception) as refused:
        parse_script(f"Hi [pause:{length}] there", rules=PauseRules.of(Settings(max_pause_s=7.5)))
    assert str(refused.value) == "text: pause at character 3 is longer than 7.5 s"
