"""A synthesize job's plan as a script: the parts to speak, each with its voice, and the pauses between.

A job's ``text`` (with its tags, text/markup.py) or its ``segments`` become
one list of parts and pauses. Each part is spoken as its own synthesis with
its own reference, so a podcast's voices never blend (a part too short to be
sampled alone joins the parts of its voice next to it: ``sampled_texts``);
what is sampled together is the unit of the quality gate, too, so a garbled
line is re-sampled alone. A target
``duration`` is spread here over every chunk of every part in proportion to
its text (upstream's ``fix_duration`` gives the whole length to each chunk
and cannot span several references), so the implied speed is the same for
all of them and checked once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from f5_worker import audio
from f5_worker.alignment.quality import GatedResult
from f5_worker.config import Settings
from f5_worker.errors import JobError
from f5_worker.logs import echo
from f5_worker.schema import SynthesizeRequest
from f5_worker.text.markup import DEFAULT_VOICE, Pause, PauseRules, SpeechPart, check_total_pause, parse_script
from f5_worker.text.normalize import normalize
from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.written_timings import written_timings
from f5_worker.timed_text import Alignment, TimedSpan, floor_ms
from f5_worker.timings import quality_field
from f5_worker.tts.chunking import plan_chunks, too_short
from f5_worker.tts.reference import PreparedReference
from f5_worker.tts.sampler import SynthesisResult
from f5_worker.voices import VoiceInfo, VoiceStore

MIN_SPEED, MAX_SPEED = 0.3, 3.0  # the speeds a target duration may imply (the request's own speed bounds)
REF_VOICE = "ref"  # the ``voice`` words carry when their voice came as audio; the next ones "ref2", "ref3" ...
PART_FADE_S = 0.01  # seconds: each part of a script fades in and out over this long
MAX_PARALLEL_PARTS = 4  # parts of one job aligned at once (threads; the aligners serialise what they must)
# Sampling runs of one job in one engine call: about the chunks the longest plain text samples at once with
# the default voice (5000 characters), so that a job's memory does not grow with its number of parts
MAX_RUNS_PER_CALL = 32


def spoken_text(written: str, language: str, normalized: bool) -> NormalizedText:
    """What is said for ``written``: numbers, symbols and abbreviations in words where ``normalized``
    (the request's ``normalize``), else the text itself."""
    return normalize(written, language) if normalized else NormalizedText(written, written, ())


def has_voices(request: SynthesizeRequest, parts: list[ScriptPart]) -> bool:
    """Whether the words say who speaks them: segments, or a text with voice tags."""
    return request.segments is not None or any(p.source.tag_at is not None or p.segment for p in parts)


def as_written(said: NormalizedText, found: Alignment) -> Alignment:
    """An alignment of the spoken text as one of the written text: its words, characters and flagged words."""
    words, chars = written_timings(said, found.words, found.chars)
    return replace(found, words=words, chars=chars, flagged_words=written_flagged(said, found, words))


def written_flagged(said: NormalizedText, found: Alignment, written_words: list[TimedSpan]) -> list[int]:
    """``flagged_words`` of the spoken words, as indices of the written words they were said for."""
    flagged = set()
    for i in found.flagged_words:
        start, end = said.to_written(found.words[i].char_start, found.words[i].char_end)
        flagged.update(n for n, w in enumerate(written_words)
                       if w.char_start < max(end, start + 1) and start < max(w.char_end, w.char_start + 1))
    return sorted(flagged)


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


@dataclass
class ScriptPart:
    """One part to speak. ``written`` is ``source_text[char_offset:char_offset + len(written)]``: word
    offsets index ``source_text`` (the request's text, or this part's segment's text)."""

    written: str
    char_offset: int
    source: VoiceSource
    segment: int
    speed: float
    ref: PreparedReference | None = None
    chunk_frames: tuple[int, ...] | None = None  # generated frames per chunk, when a duration is set

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
            source = VoiceSource(seg.voice, seg.ref_audio_url, seg.ref_audio_base64, seg.ref_text,
                                 label=seg.voice or audio_label[(seg.ref_audio_url, seg.ref_audio_base64)],
                                 prefix=f"segments.{n}.") if given else own
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
    audio = (request.ref_audio_url, request.ref_audio_base64)
    label = request.voice or (audio_labels(request)[audio] if audio != (None, None) else DEFAULT_VOICE)
    return VoiceSource(request.voice, request.ref_audio_url, request.ref_audio_base64, request.ref_text, label)


def _tag_source(part: SpeechPart) -> VoiceSource:
    if part.voice.lower() == DEFAULT_VOICE:
        return VoiceSource(label=DEFAULT_VOICE, tag_at=part.voice_at)
    return VoiceSource(voice=part.voice, label=part.voice, tag_at=part.voice_at)


def _part(text: str, item: SpeechPart, source: VoiceSource, segment: int, speed: float) -> ScriptPart:
    return ScriptPart(text[item.char_start:item.char_end], item.char_start, source, segment, speed)


@dataclass(frozen=True)
class ResolvedScript:
    """A synthesize job's script and what its stored voices decide, found once per job: worker.py picks the
    model from it and hands it to the action, which speaks it. The script is parsed, and each voice's metadata
    read (a GET on a bucket), here only, so the model, the language and the references all follow from one
    reading, even when another worker replaces a voice meanwhile."""

    items: list[ScriptPart | Pause]  # the script: parts and pauses in the order they are heard
    parts: list[ScriptPart]  # its parts alone
    model: str | None  # the request's ``model``, else the first its voices keep; None: the default model
    language: str | None  # the request's ``language``, else the first its voices keep; None: guessed from the text
    voice_infos: dict[str, VoiceInfo]  # by name: each stored voice the parts speak (and ``voice``, where read)


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


# -- what each sampling run speaks -----------------------------------------------------------------


@dataclass
class SampledText:
    """What one sampling run speaks: one part, or parts of one voice that meet with no pause between them,
    where one of them alone would be short (tts/chunking.too_short).

    Upstream draws a text shorter than ``SHORT_TEXT_BYTES`` out to more than three times its length, so four
    segments "Yes.", "No.", "Okay.", "Sure." lasted 5.4 s, and the same words as one text 1.9 s. A stream's
    first piece grows with the words after it for the same reason; a script's short part grows with the
    parts of its voice next to it, and its audio is cut back into the parts afterwards (``split_sampled``),
    so each keeps its own words, voice and segment. A short part alone between pauses, or between other
    voices, is drawn out as a text of its own is."""

    members: list[int]  # indices of the parts it speaks, in order
    starts: list[int]  # where each member's spoken text starts in ``text``
    text: str  # the members' spoken texts, joined with a space
    ref: PreparedReference
    speed: float
    chunk_frames: tuple[int, ...] | None = None  # generated frames per chunk, when a duration is set (fit_duration)


def sampled_texts(script: list[ScriptPart | Pause], parts: list[ScriptPart], spoken: list[NormalizedText]
                  ) -> list[SampledText]:
    """The parts as the sampling runs that speak them, in order. Parts join where they are next to each other
    (a pause of no whole millisecond, ``<break strength="none"/>``, separates nothing), share a prepared
    reference and a speed, and the text so far or the next part is short."""
    groups: list[SampledText] = []
    joinable = False  # whether the last group may take the next part: no pause since it
    at = iter(range(len(parts)))
    for item in script:
        if isinstance(item, Pause):
            joinable = joinable and round(item.seconds * 1000) == 0
            continue
        i = next(at)
        said = spoken[i].spoken
        last = groups[-1] if groups else None
        if (joinable and last.ref is parts[i].ref and last.speed == parts[i].speed
                and (too_short(last.text) or too_short(said))):
            last.members.append(i)
            last.starts.append(len(last.text) + 1)
            last.text = f"{last.text} {said}"
        else:
            groups.append(SampledText([i], [0], said, parts[i].ref, parts[i].speed))
        joinable = True
    return groups


def split_sampled(group: SampledText, outcome: tuple[SynthesisResult, GatedResult | None],
                  spoken: list[NormalizedText], align: Callable[[np.ndarray, int, str], Alignment]
                  ) -> list[tuple[SynthesisResult, GatedResult | None]]:
    """A sampling run's audio and alignment as each of its parts': the audio cut halfway between the last
    word of one part and the first of the next, each part's words timed in its own audio and offset in its
    own spoken text. A run not aligned by the quality gate is aligned here (``align``) to find the cuts.
    The run's chunks, timing, and retries stay with its first part, so that they add up once."""
    result, gated = outcome
    if len(group.members) == 1:
        return [outcome]
    rate = result.sample_rate
    found = gated.alignment if gated is not None else align(result.wave, rate, group.text)
    ends = [start + len(spoken[i].spoken) for start, i in zip(group.starts, group.members)]
    owned = [[n for n, w in enumerate(found.words) if start <= w.char_start < end]
             for start, end in zip(group.starts, ends)]
    cuts = [0]
    for k in range(1, len(group.members)):
        before, after = owned[k - 1], owned[k]
        if before and after:
            cut = round((found.words[before[-1]].end + found.words[after[0]].start) / 2 * rate)
        else:  # no word timed on one side (cannot happen with a part's letters or digits): by its share of text
            cut = round(len(result.wave) * group.starts[k] / len(group.text))
        cuts.append(min(max(cut, cuts[-1]), len(result.wave)))
    cuts.append(len(result.wave))
    out = []
    for k, (start, end) in enumerate(zip(group.starts, ends)):
        wave = result.wave[cuts[k]:cuts[k + 1]]
        place = (cuts[k] / rate, len(wave) / rate, start)
        first = owned[k][0] if owned[k] else 0
        alignment = replace(found, words=[_local(found.words[n], *place) for n in owned[k]],
                            chars=[_local(c, *place) for c in found.chars if start <= c.char_start < end],
                            flagged_words=[n - first for n in found.flagged_words if n in owned[k]],
                            align_seconds=found.align_seconds if k == 0 else 0.0)
        part_result = replace(result, wave=wave, chunks=result.chunks if k == 0 else [],
                              timing_ms=result.timing_ms if k == 0 else {})
        part_gated = None if gated is None else GatedResult(wave, rate, alignment, gated.seed,
                                                            gated.retries if k == 0 else 0)
        out.append((part_result, part_gated))
    return out


def _local(span: TimedSpan, offset: float, length: float, chars: int) -> TimedSpan:
    """A run's word or character as its part's: ``offset`` seconds and ``chars`` characters earlier, within
    the part's ``length`` seconds."""
    return replace(span, start=min(max(span.start - offset, 0.0), length), end=min(max(span.end - offset, 0.0), length),
                   char_start=span.char_start - chars, char_end=span.char_end - chars)


# -- a target duration ------------------------------------------------------------------------------


def natural_frames(ref: PreparedReference, text: str, hop_length: int) -> float:
    """Generated frames for ``text`` at speed 1, as upstream sizes a chunk (tts/chunking.chunk_frames)."""
    ref_frames = len(ref.wave) // hop_length
    return ref_frames / len(ref.text.encode("utf-8")) * len(text.encode("utf-8"))


def _out_of_range(speed: float) -> str:
    """A refused speed as the message quotes it: rounded away from the allowed range, never into it (3.03 is
    not "3.0"), and with a digit that is not zero however slow."""
    if speed > MAX_SPEED:
        return f"{math.ceil(speed * 100) / 100:g}"
    return f"{math.floor(speed * 100) / 100:g}" if speed >= 0.01 else f"{speed:.1g}"


def fit_duration(parts: Sequence[ScriptPart | SampledText], texts: list[str], pause_samples: int, target_s: float, *,
                 sample_rate: int, hop_length: int, cross_fade_s: float) -> float:
    """Spread ``target_s`` over the parts' chunks in proportion to their text: sets every part's ``speed``
    and ``chunk_frames``; returns the speed this implies. ``texts`` are what each part (or sampling run)
    speaks.

    Refuses (``duration: ...``) a target that would need a speed outside ``MIN_SPEED``-``MAX_SPEED``.
    Lengths are whole frames; the total is within one frame of the target (cross-fades between chunks
    overlap ``cross_fade_s`` each and are added back).
    """
    natural = [natural_frames(p.ref, t, hop_length) for p, t in zip(parts, texts)]
    speech_samples = target_s * sample_rate - pause_samples
    natural_s = sum(natural) * hop_length / sample_rate
    pause_s = pause_samples / sample_rate
    shortest, longest = natural_s / MAX_SPEED + pause_s, natural_s / MIN_SPEED + pause_s
    needs = f"the text needs between {math.ceil(shortest * 10) / 10:g} and {math.floor(longest * 10) / 10:g} s"
    if speech_samples <= 0:
        raise JobError("duration", f"{target_s:g} s leaves no time to speak after {pause_s:g} s of pauses; {needs}")
    speed = natural_s / (speech_samples / sample_rate)
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise JobError("duration", f"{target_s:g} s would need speed {_out_of_range(speed)}; {needs}")
    chunked = [[c for c in plan_chunks(p.ref, t, speed)] for p, t in zip(parts, texts)]
    overlap = int(cross_fade_s * sample_rate)
    joins = sum(max(len(c) - 1, 0) for c in chunked) * overlap
    total_frames = max(round((speech_samples + joins) / hop_length), sum(len(c) for c in chunked))
    weights = [natural_frames(p.ref, c, hop_length) for p, cs in zip(parts, chunked) for c in cs]
    # Vocos gives (frames - 1) × hop samples for a chunk's frames (its ISTFT is centred): one more frame each
    frames = [n + 1 for n in _largest_remainder(weights, total_frames)]
    at = 0
    for part, chunks in zip(parts, chunked):
        part.speed = speed
        part.chunk_frames = tuple(frames[at:at + len(chunks)])
        at += len(chunks)
    return speed


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """``total`` split into whole numbers in proportion to ``weights`` (each at least 1)."""
    whole = sum(weights) or 1.0
    exact = [total * w / whole for w in weights]
    out = [max(1, int(x)) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    for i in order[:max(total - sum(out), 0)]:
        out[i] += 1
    return out


# -- the parts joined into one result --------------------------------------------------------------


@dataclass
class JoinedScript:
    """The whole job's audio and timings. ``alignment``: the words as written, times absolute, offsets in the
    text each part came from; ``normalized``: the words as spoken, offsets in ``normalized_text``."""

    wave: np.ndarray
    normalized_text: str
    alignment: Alignment | None = None
    normalized: Alignment | None = None
    quality: dict | None = None


def join_script(script: list[ScriptPart | Pause], parts: list[ScriptPart], spoken: list[NormalizedText],
                outcomes: list[tuple[SynthesisResult, GatedResult | None]], pause_samples: dict[int, int],
                sample_rate: int, labelled: bool = False) -> JoinedScript:
    """The parts end to end with their pauses' silence (exactly ``pause_samples[id(pause)]`` samples each).

    A text without markup is one part: its audio is the part's, untouched. Otherwise each part fades in and
    out over ``PART_FADE_S`` (its length kept), so a part meets silence or the next voice without a click.
    Parts' spoken texts are joined with a space into ``normalized_text``. ``labelled``: every word and
    character carries its part's voice and segment.
    """
    plain = len(script) == 1
    waves: list[np.ndarray] = []
    written_words: list[TimedSpan] = []
    written_chars: list[TimedSpan] = []
    spoken_words: list[TimedSpan] = []
    spoken_chars: list[TimedSpan] = []
    per_part: list[tuple[Alignment, float, int]] = []
    at_sample, at_char = 0, 0
    outcome = iter(zip(parts, spoken, outcomes))
    for item in script:
        if isinstance(item, Pause):
            waves.append(np.zeros(pause_samples[id(item)], dtype=np.float32))
            at_sample += len(waves[-1])
            continue
        part, said, (result, gated) = next(outcome)
        wave = result.wave if plain else audio.fade_edges(result.wave, sample_rate, PART_FADE_S)
        start = at_sample / sample_rate
        if gated is not None:
            found = gated.alignment
            written = as_written(said, found)
            label = part.labels() if labelled else {}
            end = (at_sample + len(wave)) / sample_rate
            written_words += [shifted(w, start, part.char_offset, end, **label) for w in written.words]
            written_chars += [shifted(c, start, part.char_offset, end, **label) for c in written.chars]
            spoken_words += [shifted(w, start, at_char, end, **label) for w in found.words]
            spoken_chars += [shifted(c, start, at_char, end, **label) for c in found.chars]
            per_part.append((written, len(wave) / sample_rate, gated.retries))
        waves.append(wave)
        at_sample += len(wave)
        at_char += len(said.spoken) + 1
    joined = JoinedScript(waves[0] if len(waves) == 1 else np.concatenate(waves),
                          " ".join(s.spoken for s in spoken))
    if per_part:
        first = per_part[0][0]
        quality = quality_field(per_part)
        estimated = any(a.estimated for a, _, _ in per_part)
        joined.alignment = Alignment(written_words, written_chars, quality["alignment_score"], first.backend,
                                     estimated, list(quality["flagged_words"]))
        joined.normalized = Alignment(spoken_words, spoken_chars, quality["alignment_score"], first.backend, estimated)
        joined.quality = quality
    return joined


def shifted(span: TimedSpan, seconds: float, chars: int, until: float, **fields) -> TimedSpan:
    """A part's word or character placed in the whole: ``seconds`` later, ``chars`` further into its text.
    Times are rounded to whole milliseconds (never floored below the part's start), and never rounded past
    ``until``, the end of the part's audio (floored to a millisecond): a word ending 0.6 ms before the end
    of the audio must not end after it."""
    last = floor_ms(until)
    return replace(span, start=min(round(seconds + span.start, 3), last), end=min(round(seconds + span.end, 3), last),
                   char_start=span.char_start + chars, char_end=span.char_end + chars, **fields)
