"""Caption files from word timings: SRT, WebVTT (karaoke timestamps), ASS (``\\k`` tags), CSV, JSON.

Words are grouped into cues that respect the layout (characters per line,
lines per cue, seconds per cue) and break after sentence ends and at pauses.
SRT and ASS are written by pysubs2; WebVTT is written here because pysubs2
drops inline timestamps, and CSV/JSON are plain data.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from dataclasses import dataclass

import pysubs2

from f5_worker.alignment import TimedSpan

CAPTION_FORMATS = ("json", "srt", "vtt", "ass", "csv")
SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
PAUSE_BREAK_S = 0.6  # a silence this long between words starts a new cue


@dataclass
class CaptionLayout:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_caption_seconds: float = 6.0


@dataclass
class Cue:
    words: list[TimedSpan]
    lines: list[str]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return max(self.words[-1].end, max(w.end for w in self.words), self.start)


def _wrap(words: list[TimedSpan], width: int) -> list[str]:
    return textwrap.wrap(" ".join(w.text for w in words), width=width, break_long_words=False,
                         break_on_hyphens=False) or [""]


def group_cues(words: list[TimedSpan], layout: CaptionLayout) -> list[Cue]:
    """Split words, in order, into cues that fit ``layout``; every word lands in exactly one cue."""
    cues: list[Cue] = []
    current: list[TimedSpan] = []
    for word in words:
        if current:
            prev = current[-1]
            candidate = current + [word]
            too_long = len(_wrap(candidate, layout.max_chars_per_line)) > layout.max_lines
            too_slow = word.end - current[0].start > layout.max_caption_seconds
            sentence_end = prev.text.rstrip("\"'”’)]»").endswith(SENTENCE_END)
            pause = word.start - prev.end >= PAUSE_BREAK_S
            sounding = word.end > word.start or any(c.isalnum() for c in word.text)
            if sounding and (too_long or too_slow or sentence_end or pause):
                cues.append(Cue(current, _wrap(current, layout.max_chars_per_line)))
                current = []
        current.append(word)
    if current:
        cues.append(Cue(current, _wrap(current, layout.max_chars_per_line)))
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


def _lines_of_words(cue: Cue) -> list[list[TimedSpan]]:
    """The cue's words distributed over its wrapped lines (wrapping only splits at spaces)."""
    out, i = [], 0
    for line in cue.lines:
        n = len(line.split())
        out.append(cue.words[i : i + n])
        i += n
    if i < len(cue.words):
        out[-1].extend(cue.words[i:])
    return out


def to_srt(cues: list[Cue]) -> str:
    subs = pysubs2.SSAFile()
    for cue in cues:
        subs.append(pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=r"\N".join(cue.lines)))
    return subs.to_string("srt")


def to_ass(cues: list[Cue]) -> str:
    """ASS with ``{\\kNN}`` before each word: centiseconds until the next word starts (karaoke)."""
    subs = pysubs2.SSAFile()
    for cue in cues:
        lines = []
        for line_words in _lines_of_words(cue):
            parts = []
            for w in line_words:
                i = cue.words.index(w)
                nxt = cue.words[i + 1].start if i + 1 < len(cue.words) else cue.end
                cs = max(0, int(round((nxt - w.start) * 100)))
                parts.append(f"{{\\k{cs}}}{w.text.replace('{', '(').replace('}', ')')}")
            lines.append(" ".join(parts))
        subs.append(pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=r"\N".join(lines)))
    return subs.to_string("ass")


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT with an inline ``<hh:mm:ss.mmm>`` timestamp before every word after a cue's first
    (the first word starts with the cue; the spec wants inline times after the cue start)."""
    out = ["WEBVTT", ""]
    for n, cue in enumerate(cues, 1):
        out.append(str(n))
        out.append(f"{_vtt_time(cue.start)} --> {_vtt_time(cue.end)}")
        for line_words in _lines_of_words(cue):
            parts = []
            for w in line_words:
                text = _escape_vtt(w.text)
                parts.append(text if w is cue.words[0] else f"<{_vtt_time(w.start)}>{text}")
            out.append(" ".join(parts))
        out.append("")
    return "\n".join(out) + "\n"


def to_csv(words: list[TimedSpan]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["word", "start", "end", "confidence"])
    for w in words:
        writer.writerow([w.text, f"{w.start:.3f}", f"{w.end:.3f}", f"{w.confidence:.3f}"])
    return buf.getvalue()


def to_json(cues: list[Cue]) -> str:
    return json.dumps(
        {"cues": [{"start": round(c.start, 3), "end": round(c.end, 3), "lines": c.lines,
                   "words": [w.to_dict() for w in c.words]} for c in cues]},
        ensure_ascii=False,
    )


def render_captions(
    words: list[TimedSpan], formats: list[str], layout: CaptionLayout, *, duration: float
) -> dict[str, str]:
    """Caption text per requested format; times are clipped to ``[0, duration]``."""
    unknown = [f for f in formats if f not in CAPTION_FORMATS]
    if unknown:
        raise ValueError(f"unknown caption format(s) {unknown}; choose from {', '.join(CAPTION_FORMATS)}")
    clipped = [
        TimedSpan(w.text, min(max(w.start, 0.0), duration), min(max(w.end, w.start, 0.0), duration),
                  w.confidence, w.char_start, w.char_end, w.kind)
        for w in words
    ]
    cues = group_cues(clipped, layout)
    writers = {"srt": lambda: to_srt(cues), "ass": lambda: to_ass(cues), "vtt": lambda: to_vtt(cues),
               "csv": lambda: to_csv(clipped), "json": lambda: to_json(cues)}
    return {fmt: writers[fmt]() for fmt in dict.fromkeys(formats)}
