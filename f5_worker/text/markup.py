"""Script markup in a job's text: pauses, SSML breaks, voice switches and paragraph breaks.

People write ``[pause:1.5s]``, paste SSML ``<break time="500ms"/>`` or switch
speakers with ``[voice:anna]``; none of that may reach the model (it would
read it aloud) or the reported words. ``parse_script`` turns the text into an
ordered script of speech parts and pauses. A speech part keeps its place in
the text exactly as written (``char_start``/``char_end``), so words timed in
it map back to the user's own characters. docs/api.md ("Scripts: pauses,
voices and segments") is the user's reference for every form.

Bracketed text is a tag when it is one word, optionally followed by ``:`` and
a value (``[pause]``, ``[voice:anna]``, ``[laughs]``): such a tag with an
unknown name is refused rather than read aloud, since it was evidently meant
as an instruction. Brackets around anything else (``[see page 4]``) are text.
Likewise ``<name ...>`` is a tag; ``<break>`` and ``<speak>`` are known, any
other is refused; a ``<`` not followed directly by a name ("3 < 4", "x < y"), or by a name that runs on into
anything but a space, "/" or ">" ("<ana@example.com>", "<https://example.com>"), is text, and so is one that no
``>`` closes, unless its name is ``break`` or ``speak`` ("if a<b then").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.logs import echo
from f5_worker.text.normalize import says_something

# SSML's <break strength>, in seconds (the values of the major cloud voices; SSML leaves them to the engine)
BREAK_STRENGTH_S = {"none": 0.0, "x-weak": 0.25, "weak": 0.5, "medium": 0.75, "strong": 1.0, "x-strong": 1.25}

_BRACKET_TAG = re.compile(r"\[([A-Za-z][\w-]*)(?::([^\[\]\n]*))?\]")
_BRACKET_OPEN = re.compile(r"\[([A-Za-z][\w-]*)(?=[:\s]|$)")  # a tag that starts but never closes
# As in XML, a tag's name follows "<" or "</" directly and ends at a space, "/" or ">": "x < y" is text, not an
# unclosed tag, and so are an address or a link in angle brackets ("Ana <ana@example.com>", "<https://a.io>")
_ANGLE_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)(?=[\s/>])([^<>]*)>")
_ANGLE_OPEN = re.compile(r"</?([A-Za-z][\w-]*)(?=[\s/>]|\Z)")
# name=value in straight or typographic quotes (text pasted from a word processor), or unquoted as HTML allows
_BREAK_ATTR = re.compile(r"""([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|“([^”]*)”|‘([^’]*)’|([^\s"'“”‘’/>]+))""")
_LENGTH = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)\s*", re.IGNORECASE)
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")


@dataclass(frozen=True)
class PauseRules:
    """The lengths and bounds of pauses, in seconds: settings (config.py, docs/configuration.md)."""

    pause_s: float  # ``[pause]``
    paragraph_pause_s: float  # a blank line
    max_pause_s: float  # one pause
    max_total_pause_s: float  # a job's pauses together

    @classmethod
    def of(cls, settings: Settings) -> PauseRules:
        return cls(settings.pause_s, settings.paragraph_pause_s, settings.max_pause_s, settings.max_total_pause_s)


DEFAULT_RULES = PauseRules.of(Settings())  # the settings' defaults


@dataclass(frozen=True)
class SpeechPart:
    """Text to speak, as ``text[char_start:char_end]`` of the text as written (never empty, no outer spaces).

    ``voice``: the stored voice a ``[voice:...]`` tag chose (``"default"``: f5-tts's voice), None for text
    before any tag (the request's own voice). ``segment``: which voice run it belongs to, counted from 0.
    ``voice_at``: the character where its voice tag stands, for errors about the voice.
    """

    char_start: int
    char_end: int
    voice: str | None = None
    segment: int = 0
    voice_at: int = 0


@dataclass(frozen=True)
class Pause:
    """Silence of ``seconds``, written at ``char_start`` (a paragraph break's pause: where the break is)."""

    seconds: float
    char_start: int
    paragraph: bool = False  # a blank line's pause, where no pause is written


ScriptItem = SpeechPart | Pause


@dataclass(frozen=True)
class _Tag:
    start: int
    end: int
    pause: float | None = None  # seconds of silence (a pause or a break)
    voice: str | None = None  # a voice switch


def parse_script(text: str, field: str = "text", *, rules: PauseRules = DEFAULT_RULES,
                 needs_speech: bool = True) -> list[ScriptItem]:
    """The script ``text`` spells: speech parts and pauses in order, tags removed.

    Pauses next to each other (and the paragraph breaks around them) make one pause: the written ones
    add up; a paragraph break between two speech parts counts only where no pause is written. Pauses
    written before the first or after the last words are kept (silence at the start or the end).
    Raises JobError naming the character where a tag is unclosed, unknown or out of bounds, for a text that
    says nothing ("&nbsp;": its letters say nothing), and, where ``needs_speech``, for a text that is nothing
    but tags (a segment of a script may be a pause alone).
    """
    items: list[ScriptItem] = []
    voice, voice_at, segment, cursor = None, 0, 0, 0
    written: list[_Tag] = []  # pauses written since the last speech
    paragraph_at: int | None = None  # a blank line since the last speech

    def flush_pause() -> None:
        nonlocal paragraph_at
        if written:
            items.append(Pause(round(sum(t.pause for t in written), 6), written[0].start))
        elif paragraph_at is not None and items:
            items.append(Pause(rules.paragraph_pause_s, paragraph_at, paragraph=True))
        written.clear()
        paragraph_at = None

    def speech(start: int, end: int) -> None:
        nonlocal paragraph_at
        pos = start
        for m in [*_PARAGRAPH.finditer(text, start, end), None]:
            part = _trimmed(text, pos, m.start() if m else end)
            if part is not None:
                flush_pause()
                items.append(SpeechPart(part[0], part[1], voice, segment, voice_at))
            if m is not None:
                paragraph_at = m.start() if paragraph_at is None else paragraph_at
                pos = m.end()

    tags = _find_tags(text, field, rules)
    for tag in tags:
        speech(cursor, tag.start)
        if tag.pause is not None:
            written.append(tag)
        elif tag.voice is not None:
            voice, voice_at, segment = tag.voice, tag.start, segment + 1
        cursor = tag.end
    speech(cursor, len(text))
    paragraph_at = None  # a blank line at the end is no pause
    flush_pause()
    _renumber_segments(items)
    if not speech_parts(items) and (needs_speech or not tags):  # a segment may be a pause alone, not nothing
        raise JobError(field, "has no words to speak outside its tags" if tags else "has no letters or digits to speak")
    check_total_pause(items, rules, field)
    return items


def check_total_pause(items: list, rules: PauseRules, field: str) -> None:
    """Refuse pauses that add up to more than ``max_total_pause_s``, in whole milliseconds: a sum of floats
    is not exact (fifty pauses of 1.2 s add up to 60.00000000000006) and must not refuse a job that is
    exactly at the bound. The message counts the paragraph breaks, whose pauses nobody wrote."""
    total_ms = sum(_ms(i.seconds) for i in items if isinstance(i, Pause))
    if total_ms <= _ms(rules.max_total_pause_s):
        return
    problem = f"pauses add up to {total_ms / 1000:g} s, more than {rules.max_total_pause_s:g} s"
    breaks = sum(1 for i in items if isinstance(i, Pause) and i.paragraph)
    if breaks:
        problem += (f" ({breaks} of them {'are blank lines' if breaks > 1 else 'is a blank line'} between "
                    f"paragraphs, {rules.paragraph_pause_s:g} s each)")
    raise JobError(field, problem)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def speech_parts(script: list[ScriptItem]) -> list[SpeechPart]:
    return [i for i in script if isinstance(i, SpeechPart)]


def _renumber_segments(items: list[ScriptItem]) -> None:
    """Segments count voice runs that hold speech: a switch followed by no text makes no segment."""
    seen: dict[int, int] = {}
    for n, item in enumerate(items):
        if isinstance(item, SpeechPart):
            seen.setdefault(item.segment, len(seen))
            items[n] = SpeechPart(item.char_start, item.char_end, item.voice, seen[item.segment], item.voice_at)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` without outer whitespace; None when nothing there is spoken (no letter or digit, once
    what no one says is left out: ``normalize.says_something``)."""
    span = text[start:end]
    if not says_something(span):
        return None
    lead = len(span) - len(span.lstrip())
    return start + lead, start + len(span.rstrip())


def _find_tags(text: str, field: str, rules: PauseRules) -> list[_Tag]:
    tags: list[_Tag] = []
    pos = 0
    while True:
        candidates = [i for i in (text.find("[", pos), text.find("<", pos)) if i >= 0]
        if not candidates:
            return tags
        at = min(candidates)
        tag = _bracket_tag(text, at, field, rules) if text[at] == "[" else _angle_tag(text, at, field, rules)
        if tag is None:
            pos = at + 1
            continue
        tags.append(tag)
        pos = tag.end


def _bracket_tag(text: str, at: int, field: str, rules: PauseRules) -> _Tag | None:
    m = _BRACKET_TAG.match(text, at)
    if m is None:
        opened = _BRACKET_OPEN.match(text, at)
        if opened and opened.group(1).lower() in ("pause", "voice"):
            raise JobError(field, f"unclosed tag at character {at}")
        return None  # brackets around text that is not a tag: read as written
    name, value = m.group(1).lower(), m.group(2)
    if name == "pause":
        seconds = rules.pause_s if value is None else _length(value, m.group(0), at, field)
        return _Tag(at, m.end(), pause=_bounded(seconds, at, field, rules))
    if name == "voice":
        voice = (value or "").strip()
        if not voice:
            raise JobError(field, f"tag {echo(m.group(0))} at character {at} names no voice")
        return _Tag(at, m.end(), voice=voice)
    raise JobError(field, f"unknown tag {echo(m.group(0))} at character {at}; "
                          "use [pause], [pause:1.5s], [voice:name] or <break time=\"500ms\"/>")


def _angle_tag(text: str, at: int, field: str, rules: PauseRules) -> _Tag | None:
    opened = _ANGLE_OPEN.match(text, at)
    if opened is None:
        return None  # "3 < 4": text
    m = _ANGLE_TAG.match(text, at)
    if m is None:
        if opened.group(1).lower() in ("break", "speak"):
            raise JobError(field, f"unclosed tag at character {at}")
        return None  # "if a<b then": no tag we read, and none closed: text, as an unknown "[name" is
    closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
    if name == "speak":  # an SSML document's wrapper: nothing to say or wait for
        return _Tag(at, m.end())
    if name != "break" or closing:
        raise JobError(field, f"unknown tag {echo(m.group(0))} at character {at}; "
                              "of SSML only <break time=\"...\"/> and <break strength=\"...\"/> are read")
    pairs = [(k.lower(), "".join(quoted)) for k, *quoted in _BREAK_ATTR.findall(attrs)]
    values = dict(pairs)
    if len(values) < len(pairs):  # XML refuses it too; taking either value would be a guess
        repeated = next(k for n, (k, _) in enumerate(pairs) if k in dict(pairs[:n]))
        raise JobError(field, f"<break> at character {at} gives the attribute {echo(repeated)} twice")
    unread = _BREAK_ATTR.sub(" ", attrs).strip().removesuffix("/").strip()
    if unread:  # never a silent default: '<break time=3 s/>' is not a 0.75 s break
        raise JobError(field, f"<break> at character {at}: cannot read {echo(unread)}; "
                              "write it as <break time=\"500ms\"/> or <break strength=\"weak\"/>")
    if set(values) - {"time", "strength"}:
        unknown = sorted(set(values) - {"time", "strength"})[0]
        raise JobError(field, f"<break> at character {at} has an unknown attribute {echo(unknown)}")
    if "time" in values:
        seconds = _length(values["time"], m.group(0), at, field)
    else:
        strength = values.get("strength", "medium").strip().lower()
        if strength not in BREAK_STRENGTH_S:
            raise JobError(field, f"<break> at character {at}: strength must be one of "
                                  f"{', '.join(BREAK_STRENGTH_S)} (got {echo(strength)})")
        seconds = BREAK_STRENGTH_S[strength]
    return _Tag(at, m.end(), pause=_bounded(seconds, at, field, rules))


def _length(value: str, tag: str, at: int, field: str) -> float:
    m = _LENGTH.fullmatch(value)
    if m is None:
        raise JobError(field, f"tag {echo(tag)} at character {at}: the length must be like 1.5s or 500ms")
    number = float(m.group(1))
    return number / 1000 if m.group(2).lower() == "ms" else number


def _bounded(seconds: float, at: int, field: str, rules: PauseRules) -> float:
    if seconds > rules.max_pause_s:  # a length of hundreds of digits reads as inf: no length to quote
        length = f"of {seconds:g} s " if math.isfinite(seconds) else ""
        raise JobError(field, f"pause {length}at character {at} is longer than {rules.max_pause_s:g} s")
    return seconds
