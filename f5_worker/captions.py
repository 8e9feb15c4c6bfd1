"""Caption files from word timings: SRT, WebVTT (karaoke timestamps), ASS (``\\k`` tags), CSV, JSON.

Words are grouped into cues that respect the layout (characters per line,
lines per cue, seconds per cue) and break after sentence ends and at pauses. A
period that closes an abbreviation (Dr., St., e.g.), an initial, or comes before a
lowercase word or a number ends no sentence. Where words carry a voice (a script
read by several voices), a cue never holds two (nor two turns: segments), and each format names the speaker
its own way: WebVTT voice spans, an ASS style per voice, an SRT prefix.
SRT and ASS are written by pysubs2; WebVTT is written here because pysubs2
drops inline timestamps, and CSV/JSON are plain data.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace

import pysubs2

from f5_worker.limits import CAPTION_FORMATS
from f5_worker.timed_text import TimedSpan, floor_ms

SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
PAUSE_BREAK_S = 0.6  # a silence this long between words starts a new cue
CLOSING_PUNCTUATION = "\"'”’)]»"
OPENING_PUNCTUATION = "\"'“‘([«"
# Abbreviations that stand before what they qualify, so their period ends no sentence (lowercase, without
# the final period). Those that often end a sentence (etc., Jr., Inc., a.m.) are left out: before a
# lowercase word or a number, their period is passed over anyway.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "mx", "dr", "prof", "st", "mt", "ft", "gen", "col", "capt", "lt", "sgt", "rev", "hon",
    "gov", "sen", "rep", "pres", "messrs", "mme", "mlle", "e.g", "i.e", "cf", "vs", "viz", "approx",
})

# An ASS style or actor name ends at a comma (the file is comma-separated) and at a line end; a
# fullwidth comma looks the same to a reader.
_ASS_NAME_SUBSTITUTES = str.maketrans({",": "\uff0c", "\n": " ", "\r": " "})
# SRT has no escapes, and players read <...> as HTML and {...} as ASS tags: a speaker's name, which is
# no word of the text, gets look-alikes instead so that it is shown whole.
_SRT_NAME_SUBSTITUTES = str.maketrans({"<": "\u2039", ">": "\u203a", "{": "(", "}": ")", "\n": " ", "\r": " "})


@dataclass
class CaptionLayout:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_caption_seconds: float = 6.0


@dataclass
class Cue:
    words: list[TimedSpan]
    line_words: list[list[TimedSpan]]  # the words of each line, in order

    @property
    def voice(self) -> str | None:
        return self.words[0].voice

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return max(self.words[-1].end, max(w.end for w in self.words), self.start)

    @property
    def lines(self) -> list[str]:
        return [_line_text(words) for words in self.line_words]


def _joiner(prev: TimedSpan, word: TimedSpan) -> str:
    """What stands between two words in the text: a space, or nothing (CJK characters are words). Words of
    two segments are apart whatever their offsets, which index each segment's own text."""
    return " " if word.char_start > prev.char_end or word.segment != prev.segment else ""


def _line_text(words: list[TimedSpan], render=lambda w: w.text) -> str:
    return "".join((_joiner(words[i - 1], w) if i else "") + render(w) for i, w in enumerate(words))


def _layout(words: list[TimedSpan], width: int) -> list[list[TimedSpan]]:
    """Greedy wrap at the text's own word boundaries; a word wider than a line gets a line of its own,
    and punctuation alone (``—``, ``...``) stays on the line before it rather than open one."""
    lines: list[list[TimedSpan]] = []
    length = 0
    for w in words:
        if lines:
            sep = _joiner(lines[-1][-1], w)
            if length + len(sep) + len(w.text) <= width or not any(c.isalnum() for c in w.text):
                lines[-1].append(w)
                length += len(sep) + len(w.text)
                continue
        lines.append([w])
        length = len(w.text)
    return lines or [[]]


def ends_sentence(word: str, next_word: str) -> bool:
    """Whether ``word``, followed by ``next_word``, ends a sentence: it ends with . ! ? or the like (before
    closing quotes and brackets), and a final period is not an abbreviation's (``Dr.``, ``e.g.``), an
    initial's (``J.``), or followed by a lowercase word or a number (``approx. 5``, ``Jr. was``)."""
    core = word.rstrip(CLOSING_PUNCTUATION)
    if not core.endswith(SENTENCE_END):
        return False
    if not core.endswith(".") or core.endswith(".."):
        return True
    stem = core.lstrip(OPENING_PUNCTUATION)[:-1]
    if stem.lower() in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha() and stem.isupper()):
        return False
    following = next_word.lstrip(OPENING_PUNCTUATION)[:1]
    return not (following.islower() or following.isdigit())


def group_cues(words: list[TimedSpan], layout: CaptionLayout) -> list[Cue]:
    """Split words, in order, into cues that fit ``layout``; every word lands in exactly one cue."""
    cues: list[Cue] = []
    current: list[TimedSpan] = []
    for word in words:
        if current:
            prev = current[-1]
            too_long = len(_layout(current + [word], layout.max_chars_per_line)) > layout.max_lines
            too_slow = word.end - current[0].start > layout.max_caption_seconds
            sentence_end = ends_sentence(prev.text, word.text)
            pause = word.start - prev.end >= PAUSE_BREAK_S
            sounding = word.end > word.start or any(c.isalnum() for c in word.text)
            turn = word.voice != prev.voice or word.segment != prev.segment  # another speaker's turn
            if turn or (sounding and (too_long or too_slow or sentence_end or pause)):
                cues.append(Cue(current, _layout(current, layout.max_chars_per_line)))
                current = []
        current.append(word)
    if current:
        cues.append(Cue(current, _layout(current, layout.max_chars_per_line)))
    return cues


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _vtt_time(seconds: float) -> str:
    ms = _ms(seconds)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SSA_WHITESPACE_TAG = re.compile(r"\\(?=[nNh])")


def _literal_ssa(text: str) -> str:
    """Text as written, for SRT/ASS through pysubs2, which reads ``\\n``, ``\\N`` and ``\\h`` as line
    breaks and spaces anywhere: a word joiner (invisible) after such a backslash keeps it literal."""
    return _SSA_WHITESPACE_TAG.sub("\\\u2060", text)


def _ass_cs(seconds: float) -> int:
    """Centiseconds as pysubs2 writes an ASS time (Aegisub's rounding of the millisecond value)."""
    return (_ms(seconds) + 5) // 10


def to_srt(cues: list[Cue], speaker_prefix: bool = True) -> str:
    """SRT has no markup for speakers: with ``speaker_prefix``, a cue whose voice differs from the
    previous cue's starts with ``NAME: ``."""
    subs = pysubs2.SSAFile()
    previous = None
    for cue in cues:
        text = r"\N".join(_line_text(words, lambda w: _literal_ssa(w.text)) for words in cue.line_words)
        if speaker_prefix and cue.voice is not None and cue.voice != previous:
            text = f"{_literal_ssa(cue.voice.translate(_SRT_NAME_SUBSTITUTES))}: {text}"
        previous = cue.voice
        subs.append(pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=text))
    return subs.to_string("srt", keep_ssa_tags=True)  # the words' braces are text, not override tags


def to_ass(cues: list[Cue]) -> str:
    """ASS with ``{\\kNN}`` before each word: centiseconds until the next word starts (karaoke).

    The tags are differences of the rounded times, so they add up to the cue's length as written. Each
    voice gets a style named after it (a copy of the default, for the viewer to restyle), and its cues
    use that style and name it as their speaker.
    """
    subs = pysubs2.SSAFile()
    styles = _ass_styles(cues)
    for name in styles.values():
        subs.styles[name] = subs.styles["Default"].copy()
    for cue in cues:
        bounds = [_ass_cs(cue.start)] + [_ass_cs(w.start) for w in cue.words[1:]] + [_ass_cs(cue.end)]
        tags = {id(w): max(0, bounds[i + 1] - bounds[i]) for i, w in enumerate(cue.words)}

        def render(w: TimedSpan) -> str:
            text = _literal_ssa(w.text).replace("{", "(").replace("}", ")")  # braces open override blocks
            return f"{{\\k{tags[id(w)]}}}{text}"

        text = r"\N".join(_line_text(words, render) for words in cue.line_words)
        event = pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=text)
        if cue.voice is not None:
            event.style = event.name = styles[cue.voice]
        subs.append(event)
    return subs.to_string("ass")


def _ass_styles(cues: list[Cue]) -> dict[str, str]:
    """Each voice's ASS style name: the voice's name as ASS can hold it, made unique where two names
    differ only in what ASS cannot hold."""
    names: dict[str, str] = {}
    taken = {"Default"}
    for cue in cues:
        if cue.voice is None or cue.voice in names:
            continue
        base = cue.voice.translate(_ASS_NAME_SUBSTITUTES).strip() or "voice"
        name, n = base, 2
        while name in taken:
            name, n = f"{base} ({n})", n + 1
        names[cue.voice] = name
        taken.add(name)
    return names


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT with an inline ``<hh:mm:ss.mmm>`` timestamp before every word that starts strictly inside
    its cue (the spec wants inline times after the cue start and before its end); a cue with a voice is
    one voice span, ``<v name>...</v>``, over all its lines."""
    out = ["WEBVTT", ""]
    for n, cue in enumerate(cues, 1):
        out.append(str(n))
        out.append(f"{_vtt_time(cue.start)} --> {_vtt_time(cue.end)}")
        start, end = _ms(cue.start), _ms(cue.end)

        def render(w: TimedSpan) -> str:
            text = _escape_vtt(w.text)
            return f"<{_vtt_time(w.start)}>{text}" if start < _ms(w.start) < end else text

        lines = [_line_text(words, render) for words in cue.line_words]
        if cue.voice is not None:
            lines[0] = f"<v {_escape_vtt(cue.voice).replace(chr(10), ' ').replace(chr(13), ' ')}>{lines[0]}"
            lines[-1] += "</v>"
        out.extend(lines)
        out.append("")
    return "\n".join(out) + "\n"


def to_csv(words: list[TimedSpan]) -> str:
    """One row per word; a ``voice`` column where words carry voices."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    voiced = any(w.voice is not None for w in words)
    writer.writerow(["word", "start", "end", "confidence"] + (["voice"] if voiced else []))
    for w in words:
        row = [w.text, f"{w.start:.3f}", f"{w.end:.3f}", f"{w.confidence:.3f}"]
        writer.writerow(row + ([w.voice or ""] if voiced else []))
    return buf.getvalue()


def to_json(cues: list[Cue]) -> str:
    return json.dumps(
        {"cues": [{"start": round(c.start, 3), "end": round(c.end, 3), "lines": c.lines,
                   **({"voice": c.voice} if c.voice is not None else {}),
                   "words": [w.to_dict() for w in c.words]} for c in cues]},
        ensure_ascii=False,
    )


def as_reported(words: list[TimedSpan], duration: float) -> list[TimedSpan]:
    """The words with the times a result reports: clipped to ``[0, duration]``, rounded down to 1 ms
    (``TimedSpan.to_dict``), so captions, CSV and ``words`` agree to the millisecond."""
    return [
        replace(w, start=floor_ms(min(max(w.start, 0.0), duration)),
                end=floor_ms(min(max(w.end, w.start, 0.0), duration)))
        for w in words
    ]


def render_captions(
    words: list[TimedSpan], formats: list[str], layout: CaptionLayout, *, duration: float,
    speaker_prefix: bool = True,
) -> dict[str, str]:
    """Caption text per requested format; times are clipped to ``[0, duration]``. ``speaker_prefix``
    (``CAPTION_SPEAKER_PREFIX``) names the speaker at each change of voice in SRT."""
    unknown = [f for f in formats if f not in CAPTION_FORMATS]
    if unknown:
        raise ValueError(f"unknown caption format(s) {unknown}; choose from {', '.join(CAPTION_FORMATS)}")
    clipped = as_reported(words, duration)
    cues = group_cues(clipped, layout)
    writers = {"srt": lambda: to_srt(cues, speaker_prefix), "ass": lambda: to_ass(cues), "vtt": lambda: to_vtt(cues),
               "csv": lambda: to_csv(clipped), "json": lambda: to_json(cues)}
    return {fmt: writers[fmt]() for fmt in dict.fromkeys(formats)}
