"""One pass of the rewrite rules over a text, left to right.

At each place where a token can start, the rules (``text.rewrite_rules``) are tried in their order; the
first that recognises what is written there gives its edits, and the scan goes on after them. Nothing is
rewritten inside a word: a letter or digit that continues the one before it (outside CJK characters), or
a number that continues a token of letters and digits through a period ("v1.2.3"), is no place to start.
In a shouted text the readings are in capitals too. ``text.normalize`` applies the edits and reads the
result again.
"""

from __future__ import annotations

import re

from f5_worker.text.languages import LanguageRules
from f5_worker.text.rewrite_rules import Edit, TextRules
from f5_worker.text.tokens import CJK


def scan(text: str, rules: LanguageRules | None, lang: str) -> list[Edit]:
    """The edits of one pass over ``text``, in order and not overlapping; ``rules`` None (a language
    without a table) reads numbers only."""
    read = TextRules(text, rules, lang)
    edits: list[Edit] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace() or (pos > 0 and _joined(text[pos - 1], text[pos])) \
                or _glued_by_dot(text, pos, edits[-1][1] if edits else 0):
            pos += 1
            continue
        for rule in read.in_order:
            found = rule(pos)
            if found:
                if read.shouted:
                    found = [(s, e, said.upper()) for s, e, said in found]
                edits.extend(e for e in found if e[0] < e[1])
                pos = max(pos + 1, found[-1][1])
                read.edited_to = max(read.edited_to, found[-1][1])
                break
        else:
            pos += 1
    return edits


def _glued_by_dot(text: str, pos: int, rewritten_to: int) -> bool:
    """Whether a number at ``pos`` continues, through a period, a token of letters and digits ("v1.2.3",
    "Python3.11"): it is part of that token, kept as written like "v2", not a number of its own. A word
    before the period ("Fig.3") or what a rule rewrote (up to ``rewritten_to``) is no such token."""
    if not (text[pos].isdigit() and pos > 0 and text[pos - 1] == "."):
        return False
    token = _TOKEN_BEFORE.search(text, max(rewritten_to, pos - 64), pos)
    return token is not None and any(ch.isalpha() for ch in token.group()) \
        and any(ch.isdigit() for ch in token.group())


def _joined(before: str, char: str) -> bool:
    """Whether ``char`` continues the word ``before`` ends (no rule starts inside a word)."""
    return before.isalnum() and char.isalnum() and not _CJK_CHAR.match(before) and not _CJK_CHAR.match(char)


_CJK_CHAR = re.compile(f"[{CJK}]")
_TOKEN_BEFORE = re.compile(r"[^\W_][\w.]*\Z")  # the word or dotted token that ends where a number starts
