"""The text as it is said, for the model to synthesize, with a map back to the text as written.

F5-TTS reads digits and symbols poorly: "$4.99" must reach it as "four dollars ninety-nine cents". The
rules in ``text.rewrite_rules``, tried along the text by ``text.rewrite_scan``, find what to say for what is
written (an address, a date, money, ...); everything else is copied as is, so text that is already words,
and the punctuation that shapes prosody, reach the model unchanged. This module applies the rules'
rewrites, gives a reading the spaces it needs from its neighbours, and reads the text again until nothing
changes, so normalizing twice gives what normalizing once gives.

Each rewrite records the span it replaced and the span it produced (``text.normalized_text``), so timings
aligned on the spoken text are turned back into timings of the words as written (``text.written_timings``):
captions and word timings show "$4.99", timed from "four" to "cents". The rules per language and the
libraries behind them are in docs/text.md.
"""

from __future__ import annotations

from f5_worker.text.languages import RULES
from f5_worker.text.normalized_text import NormalizedText, Rewrite, compose
from f5_worker.text.numbers import base_language, num2words_knows
from f5_worker.text.rewrite_rules import Edit, written_forms
from f5_worker.text.rewrite_scan import scan

# Normalizing the normalized text again until nothing changes takes at most this many passes.
MAX_PASSES = 3


def normalize(text: str, language: str = "en", starts_line: bool = True) -> NormalizedText:
    """``text`` as it is to be said in ``language`` (a tag: "en", "pt-BR"). Languages with rules: en, fr,
    de, es, it, pt; any other gets its numbers said where num2words knows it, and nothing else changed. First,
    in every language, what no one says is left out and letters written in another form are made plain
    (``rewrite_rules.written_forms``; ``starts_line``: whether ``text`` starts a line, where a markdown
    heading's marks may stand), so the rules read the plain text from their first pass.

    A reading can meet the text beside it and make something another rule reads (an address's last word
    and the period after it, "ca."): the text is normalized again until nothing changes, at most
    ``MAX_PASSES`` times, and the passes' rewrites are merged, so the result is its own normal form.
    """
    lang = base_language(language)
    rules = RULES.get(lang)
    norm = plain_forms(text, starts_line)
    if rules is None and not num2words_knows(lang):
        return norm
    for _ in range(MAX_PASSES):
        again = _applied(norm.spoken, scan(norm.spoken, rules, lang))
        if not again.rewrites:
            break
        norm = compose(norm, again) if norm.rewrites else again
    return norm


def says_something(text: str) -> bool:
    """Whether anything of ``text`` is said: a letter or digit once what no one says is left out ("&nbsp;"
    and "&#x1F600;" hold letters and digits, and say nothing)."""
    return any(ch.isalnum() for ch in text) and any(ch.isalnum() for ch in plain_forms(text).spoken)


def plain_forms(text: str, starts_line: bool = True) -> NormalizedText:
    """``text`` with what no one says left out and its letters in their plain form, in every language
    (``rewrite_rules.written_forms``), read again until that changes nothing."""
    norm = NormalizedText(text, text, ())
    for _ in range(MAX_PASSES):  # what one pass leaves out can make more ("#\ufe0f Title": a heading's mark)
        forms = _applied(norm.spoken, written_forms(norm.spoken, starts_line), spaced=False)  # characters: nothing to space
        if not forms.rewrites:
            break
        norm = compose(norm, forms) if norm.rewrites else forms
    return norm


def _applied(text: str, edits: list[Edit], spaced: bool = True) -> NormalizedText:
    """``text`` with ``edits`` (in order, apart) applied; each reading, where ``spaced``, given the spaces it
    needs from its neighbours."""
    spoken: list[str] = []
    rewrites: list[Rewrite] = []
    at = 0
    length = 0
    last = ""  # the last character of the spoken text so far
    for start, end, said in edits:
        while start < end and text[end - 1].isspace():  # whitespace stays outside rewrites
            end -= 1
            said = said.rstrip()
        if start >= end:
            continue
        if spaced:
            said = _spaced(text, start, end, said)
        if said.startswith(" ") and (text[start - 1] if start > at else last).isspace():
            said = said[1:]  # two symbols side by side ("C++"): the first one's word already has its space
        if said == text[start:end]:
            continue
        spoken.append(text[at:start])
        length += start - at
        rewrites.append(Rewrite(start, end, length, length + len(said)))
        spoken.append(said)
        length += len(said)
        last = said[-1:] or (text[start - 1] if start > at else last)
        at = end
    spoken.append(text[at:])
    return NormalizedText(text, "".join(spoken), tuple(rewrites))


_OPENING = "([{\"'“‘«¿¡"
_CLOSING = ")]}\"'”’».,;:!?"


def _spaced(text: str, start: int, end: int, said: str) -> str:
    """A reading that would run into its neighbour ("a+b", "AT&T", "0.@") gets a space on that side:
    a symbol read as a word becomes a word of its own."""
    if not said:
        return said
    before = text[start - 1] if start > 0 else " "
    if said[0].isalnum() and not before.isspace() and before not in _OPENING \
            and not text[start].isalnum():
        said = " " + said
    after = text[end] if end < len(text) else " "
    closing = _CLOSING.replace(".", "") if end - start == 1 and not text[start].isalnum() else _CLOSING
    if said[-1].isalnum() and not after.isspace() and after not in closing \
            and not text[end - 1].isalnum():
        said += " "  # a symbol's word before a period: "@.com" is "at .com", not the address "at.com"
    return said
