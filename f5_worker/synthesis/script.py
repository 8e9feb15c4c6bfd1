"""A synthesize job's plan as a script: the parts to speak, each with its voice, and the pauses between.

A job's ``text`` (with its tags, text/markup.py) or its ``segments`` become
one list of parts and pauses. Each part is spoken as its own synthesis with
its own reference, so a podcast's voices never blend (a part too short to be
sampled alone joins the parts of its voice next to it: runs.sampled_texts).
The script is resolved once per job (``resolve_script``): the model and the
language follow from the voices it names, before anything is sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.limits import DEFAULT_VOICE, is_default_voice
from f5_worker.logs import echo
from f5_worker.schema import SynthesizeRequest
from f5_worker.text.markup import Pause, PauseRules, SpeechPart, check_total_pause, parse_script
from f5_worker.text.normalize import normalize
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.tts.reference import PreparedReference
from f5_worker.voices import VoiceInfo, VoiceStore

REF_VOICE = "ref"  # the ``voice`` words carry when their voice came as audio; the next ones "ref2", "ref3" ...


def spoken_text(written: str, language: str, normalized: bool, starts_line: bool = True) -> NormalizedText:
    """What is said for ``written``: numbers, symbols and abbreviations in words where ``normalized``
    (the request's ``normalize``), else the text itself. ``starts_line``: ScriptPart.starts_line."""
    return normalize(written, language, starts_line) if normalized else NormalizedText(written, written, ())


def has_voices(request: SynthesizeRequest, parts: list[ScriptPart]) -> bool:
    """Whether the words say who speaks them: segments, or a text with voice tags."""
    return request.segments is not None or any(p.source.tag_at is not None or p.segment for p in parts)


@dataclass(frozen=True)
class VoiceSource:
    """Where a part's voice comes from, in the request's own terms (the fields of ReferenceAudio)."""

    voice: str | None = None
    ref_audio_url: str | None = None
    ref_audio_base64: str | None = None
    ref_text: str | None = None
    label: str = DEFAULT_VOICE  # what the words' ``voice`` says
    prefix: str = ""  # where its fields sit in the request, for errors ("segments.2.")
    tag_at: int | None = None  # a ``[voice:name]`` tag's character in the text


@dataclass(frozen=True)
class ScriptPart:
    """One part to speak. ``written`` is ``source_text[char_offset:char_offset + len(written)]``: word
    offsets index ``source_text`` (the request's text, or this part's segment's text)."""

    written: str
    char_offset: int
    source: VoiceSource
    segment: int
    speed: float
    ref: PreparedReference | None = None  # its voice's reference, once loaded (ResolvedScript.with_references)
    # whether it starts a line of its text (after a tag on the line it does not): only there may "#" be a
    # markdown heading's mark, said as nothing
    starts_line: bool = True

    def labels(self) -> dict:
        """The fields that say who speaks a word and in which part (TimedSpan's ``voice`` and ``segment``)."""
        return {"voice": self.source.label, "segment": self.segment}


def script_of(request: SynthesizeRequest, rules: PauseRules, max_segments: int,
              max_parts: int = Settings.max_script_parts) -> list[ScriptPart | Pause]:
    """The request as parts and pauses, voices named but not yet loaded (``ScriptPart.ref`` is None).

    At most ``max_parts`` parts: each is sampled with its voice's reference as its prompt, so the work and
    the memory of a job grow with their number, not only with its text ("a[pause:0s]" × 454 took three
    times the sampling and twice the memory of the longest plain text)."""
    items = _script_items(request, rules, max_segments)
    parts = sum(isinstance(item, ScriptPart) for item in items)
    if parts > max_parts:
        field, verb = ("text", "holds") if request.segments is None else ("segments", "hold")
        raise JobError(field, f"{verb} {parts} parts (runs of text between tags, each spoken on its own); at most "
                              f"{max_parts} are taken (MAX_SCRIPT_PARTS)")
    return items


def _script_items(request: SynthesizeRequest, rules: PauseRules, max_segments: int) -> list[ScriptPart | Pause]:
    own = own_source(request)
    if request.segments is not None:
        if len(request.segments) > max_segments:
            raise JobError("segments", f"are {len(request.segments)}; at most {max_segments} are taken (MAX_SEGMENTS)")
        audio_label = audio_labels(request)
        items: list[ScriptPart | Pause] = []
        for n, seg in enumerate(request.segments):
            field = f"segments.{n}.text"
            given = seg.voice is not None or seg.ref_audio_url is not None or seg.ref_audio_base64 is not None
            if not given:
                source = own
            elif seg.voice is not None and is_default_voice(seg.voice):
                source = VoiceSource(label=DEFAULT_VOICE, prefix=f"segments.{n}.")
            else:
                source = VoiceSource(seg.voice, seg.ref_audio_url, seg.ref_audio_base64, seg.ref_text,
                                     label=seg.voice or audio_label[(seg.ref_audio_url, seg.ref_audio_base64)],
                                     prefix=f"segments.{n}.")
            for item in parse_script(seg.text, field, rules=rules, needs_speech=False):
                if isinstance(item, Pause):
                    items.append(item)
                elif item.voice is not None:
                    raise JobError(field, f"[voice:] tags are not read in segments (at character {item.voice_at}); "
                                          "give each voice its own segment")
                else:
                    items.append(_part(seg.text, item, source, n, seg.speed or request.speed))
        if not any(isinstance(i, ScriptPart) for i in items):
            raise JobError("segments", "have no words to speak outside their tags")
        check_total_pause(items, rules, "segments")
        return items
    items = []
    for item in parse_script(request.text, rules=rules):
        if isinstance(item, Pause):
            items.append(item)
        else:
            source = own if item.voice is None else _tag_source(item)
            items.append(_part(request.text, item, source, item.segment, request.speed))
    return items


def audio_labels(request: SynthesizeRequest) -> dict[tuple[str | None, str | None], str]:
    """Each distinct voice a script gives as audio, keyed by (``ref_audio_url``, ``ref_audio_base64``), and
    the ``voice`` its words carry: ``ref`` for the first (the request's own audio, if it has any, else the
    first segment's), ``ref2``, ``ref3`` ... for the others in the order they speak, skipping a name that a
    stored voice of the same script has. Captions name speakers by this label, so two speakers given as audio
    must not share one. "The same audio" is the same URL or the same base64 string: deciding it before
    anything is fetched or decoded keeps it free, and a client repeats a turn's voice by repeating its field."""
    taken = {request.voice} | {seg.voice for seg in request.segments or ()}
    given = [(request.ref_audio_url, request.ref_audio_base64)] + [
        (seg.ref_audio_url, seg.ref_audio_base64) for seg in request.segments or ()]
    labels: dict[tuple[str | None, str | None], str] = {}
    number = 0
    for key in given:
        if key == (None, None) or key in labels:
            continue
        while True:
            number += 1
            label = REF_VOICE if number == 1 else f"{REF_VOICE}{number}"
            if label not in taken:
                break
        labels[key] = label
    return labels


def own_source(request: SynthesizeRequest) -> VoiceSource:
    if request.voice is not None and is_default_voice(request.voice):
        return VoiceSource(label=DEFAULT_VOICE)
    audio = (request.ref_audio_url, request.ref_audio_base64)
    label = request.voice or (audio_labels(request)[audio] if audio != (None, None) else DEFAULT_VOICE)
    return VoiceSource(request.voice, request.ref_audio_url, request.ref_audio_base64, request.ref_text, label)


def _tag_source(part: SpeechPart) -> VoiceSource:
    if is_default_voice(part.voice):
        return VoiceSource(label=DEFAULT_VOICE, tag_at=part.voice_at)
    return VoiceSource(voice=part.voice, label=part.voice, tag_at=part.voice_at)


def _part(text: str, item: SpeechPart, source: VoiceSource, segment: int, speed: float) -> ScriptPart:
    return ScriptPart(text[item.char_start:item.char_end], item.char_start, source, segment, speed,
                      starts_line=text[item.char_start - 1:item.char_start] in ("", "\n"))


@dataclass(frozen=True)
class ResolvedScript:
    """A synthesize job's script and what its stored voices decide, found once per job: the synthesis service
    picks the model from it, then loads each voice's reference into it and speaks it. The script is parsed,
    and each voice's metadata read (a GET on a bucket), here only, so the model, the language and the
    references all follow from one reading, even when another worker replaces a voice meanwhile."""

    items: list[ScriptPart | Pause]  # the script: parts and pauses in the order they are heard
    parts: list[ScriptPart]  # its parts alone
    model: str | None  # the request's ``model``, else the first its voices keep; None: the default model
    language: str | None  # the request's ``language``, else the first its voices keep; None: guessed from the text
    voice_infos: dict[str, VoiceInfo]  # by name: each stored voice the parts speak (and ``voice``, where read)

    def with_references(self, references: Mapping[VoiceSource, PreparedReference]) -> ResolvedScript:
        """The same script with each part's reference (``references``: one per voice source), as new parts:
        the parts a voice shares get the same prepared reference, which keeps them in one sampling run."""
        items = [replace(item, ref=references[item.source]) if isinstance(item, ScriptPart) else item
                 for item in self.items]
        return replace(self, items=items, parts=[item for item in items if isinstance(item, ScriptPart)])


def resolve_script(request: SynthesizeRequest, rules: PauseRules, max_segments: int, voices: VoiceStore,
                   known_models: Sequence[str], max_parts: int = Settings.max_script_parts) -> ResolvedScript:
    """The request's script, and the model and language its stored voices keep where the request names none.

    Each is the first its voices keep: the request's ``voice`` first, then each voice in the order it speaks
    (docs/api.md, "segments"). A job samples one model and reads its numbers in one language, so a script whose
    voices keep different ones takes the first; the request's ``model``/``language`` rule all. Each voice's
    metadata is read once, in that order (the request's ``voice`` too where no part speaks it, so that a
    voice that is not there is refused rather than ignored). A voice that keeps a model not in
    ``known_models`` (the worker's registry) is refused as soon as it is read.
    """
    items = script_of(request, rules, max_segments, max_parts)
    parts = [item for item in items if isinstance(item, ScriptPart)]
    model, language = request.model, request.language
    sources = [p.source for p in parts]
    if request.voice is not None:  # read even where no part speaks it: a voice that is not there is refused
        sources.insert(0, own_source(request))
    infos: dict[str, VoiceInfo] = {}
    for source in sources:
        if source.voice is None or source.voice in infos:
            continue
        info = infos[source.voice] = _voice_info(voices, source)
        if model is None and info.model:
            model = info.model
            if model not in known_models:
                raise _unknown_model_error(source, model, known_models)
        if language is None and info.language:
            language = info.language
    return ResolvedScript(items, parts, model, language, infos)


def _voice_info(voices: VoiceStore, source: VoiceSource) -> VoiceInfo:
    """The metadata of ``source``'s stored voice; the errors name the field or the tag that gave the voice."""
    try:
        return voices.info(source.voice, source.prefix + "voice")
    except JobError as exc:
        if source.tag_at is None:
            raise
        raise tag_voice_error(exc, source) from None


def _unknown_model_error(source: VoiceSource, model: str, known_models: Sequence[str]) -> JobError:
    problem = (f"voice {source.voice!r} was made for model {model!r}, which this worker does not have; "
               f"give model (one of {', '.join(known_models)})")
    if source.tag_at is not None:
        return JobError("text", f"{problem} (at character {source.tag_at})")
    return JobError(source.prefix + "voice", problem)


def tag_voice_error(exc: JobError, source: VoiceSource) -> JobError:
    """A ``[voice:name]`` tag's voice could not be loaded: the error names the tag's place in the text."""
    at = source.tag_at
    if exc.problem.startswith("no voice named"):
        return JobError("text", f"unknown voice {echo(source.voice)} at character {at}")
    return JobError("text", f"voice {echo(source.voice)} at character {at}: {exc.problem}")
