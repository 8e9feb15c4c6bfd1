"""Pronunciations (CMUdict ARPABET) for words the dictionary lacks.

First choice is espeak-ng's letter-to-sound rules (IPA, mapped to ARPABET);
when libespeak-ng is unavailable a crude spelling-based mapping keeps the job
going: a missing word must never fail an alignment, a rough pronunciation only
costs some timing accuracy on that word.
"""

from __future__ import annotations

import functools
import re

from f5_worker.alignment import espeak

ARPABET = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)

# Longest IPA sequences first; stress and length marks are dropped before lookup.
_IPA_TO_ARPABET = {
    "aɪə": "AY ER", "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "ɔɪ": "OY", "əʊ": "OW",
    "ɪə": "IH R", "ɛə": "EH R", "ʊə": "UH R", "tʃ": "CH", "dʒ": "JH", "ts": "T S",
    "ɑ": "AA", "ɒ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɔ": "AO", "ɛ": "EH", "e": "EH",
    "ɜ": "ER", "ɚ": "ER", "ɝ": "ER", "ɪ": "IH", "i": "IY", "ᵻ": "IH", "ʊ": "UH", "u": "UW", "o": "OW", "a": "AA",
    "y": "UW", "ø": "ER", "œ": "ER", "ɯ": "UW", "ɨ": "IH",
    "b": "B", "d": "D", "ð": "DH", "f": "F", "ɡ": "G", "g": "G", "h": "HH", "j": "Y", "k": "K", "l": "L",
    "ɫ": "L", "m": "M", "n": "N", "ŋ": "NG", "ɲ": "N Y", "p": "P", "ɹ": "R", "r": "R", "ɾ": "T", "ɽ": "R",
    "s": "S", "ʃ": "SH", "t": "T", "θ": "TH", "v": "V", "w": "W", "z": "Z", "ʒ": "ZH", "x": "K", "ç": "HH",
    "ʔ": "", "χ": "K", "ʁ": "R", "β": "V", "ɣ": "G", "ʎ": "L Y", "c": "K", "ɟ": "G", "ɕ": "SH", "ʑ": "ZH",
}
_IPA_KEYS = sorted(_IPA_TO_ARPABET, key=len, reverse=True)

# Spelling fallback: digraphs first, then single letters.
_SPELLING = [
    ("tch", "CH"), ("sch", "SH"), ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("ng", "NG"),
    ("ck", "K"), ("qu", "K W"), ("wh", "W"), ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"),
    ("ow", "OW"), ("ai", "EY"), ("ay", "EY"), ("oi", "OY"), ("oy", "OY"), ("au", "AO"), ("aw", "AO"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"), ("h", "HH"),
    ("i", "IH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"),
    ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"), ("x", "K S"),
    ("y", "Y"), ("z", "Z"), ("'", ""),
]


def ipa_to_arpabet(ipa: str) -> list[str]:
    """Map an IPA string (espeak-ng style) to ARPABET phones, skipping what has no equivalent."""
    ipa = re.sub(r"[ˈˌːˑ‿.\-\s]", "", ipa)
    phones: list[str] = []
    i = 0
    while i < len(ipa):
        for key in _IPA_KEYS:
            if ipa.startswith(key, i):
                phones.extend(_IPA_TO_ARPABET[key].split())
                i += len(key)
                break
        else:
            i += 1  # unknown symbol (tone, diacritic): skip it
    return phones


def spell_to_arpabet(word: str) -> list[str]:
    """Crude letter-by-letter pronunciation; only used when espeak-ng is unavailable."""
    word = word.lower()
    phones: list[str] = []
    i = 0
    while i < len(word):
        for letters, arpa in _SPELLING:
            if word.startswith(letters, i):
                phones.extend(arpa.split())
                i += len(letters)
                break
        else:
            i += 1
    return phones


@functools.lru_cache(maxsize=4096)
def pronounce(word: str) -> str:
    """ARPABET pronunciation of ``word`` (space-separated phones), never empty."""
    phones: list[str] = []
    try:
        phones = ipa_to_arpabet(espeak.phonemize_ipa(word))
    except (espeak.EspeakUnavailable, OSError):
        phones = []
    if not phones:
        phones = spell_to_arpabet(word)
    phones = [p for p in phones if p in ARPABET]
    return " ".join(phones) or "AH"
