"""Text cut into the chunks F5-TTS samples, and their lengths in frames, as upstream sizes them; and a
streamed job's pieces, cut between words and sized by the stream's measured speed."""

from __future__ import annotations

import logging
import re

from f5_worker.text.normalized_text import NormalizedText, Rewrite
from f5_worker.tts.reference import PreparedReference

log = logging.getLogger(__name__)

# upstream: sentences end at these marks (ASCII followed by a space, CJK directly)
_SENTENCE_SPLIT = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")
SHORT_TEXT_BYTES = 10  # UTF-8 bytes: upstream draws a text shorter than this out to over three times its length ...
SHORT_TEXT_SPEED = 0.3  # ... sampling it at this speed, whatever the job's (chunk_frames)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Split text at sentence marks into chunks of at most ``max_chars`` UTF-8 bytes (upstream's rule).

    Upstream stops there, so a text without punctuation became one chunk of any length (5000
    characters: 8 minutes of audio in one sampling run). A sentence over ``max_chars`` is split
    further at spaces, and a word longer than that between characters.
    """
    chunks, current = [], ""
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence:
            continue
        if len(sentence.encode("utf-8")) > max_chars:
            if current.strip():
                chunks.append(current.strip())
            current = ""
            chunks.extend(_split_long_sentence(sentence, max_chars))
            continue
        spaced = sentence + " " if len(sentence[-1].encode("utf-8")) == 1 else sentence
        if len(current.encode("utf-8")) + len(sentence.encode("utf-8")) <= max_chars:
            current += spaced
        else:
            if current:
                chunks.append(current.strip())
            current = spaced
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Chunks of at most ``max_chars`` bytes, cut at spaces; inside a word only when it alone is longer."""
    def fits(text: str) -> bool:
        return len(text.encode("utf-8")) <= max_chars

    words = []
    for word in sentence.split():
        fragment = ""
        for ch in word:
            if fragment and not fits(fragment + ch):
                words.append(fragment)
                fragment = ""
            fragment += ch
        words.append(fragment)
    chunks, current = [], ""
    for word in words:
        joined = f"{current} {word}" if current else word
        if current and not fits(joined):
            chunks.append(current)
            current = word
        else:
            current = joined
    if current:
        chunks.append(current)
    return chunks


def max_chunk_chars(ref: PreparedReference, speed: float) -> int:
    """Upstream sizes chunks so reference + chunk stays under about 22 s."""
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    return max(1, int(per_second * (22 - ref.duration) * speed))


def too_short(text: str) -> bool:
    """Whether upstream draws ``text`` out (``chunk_frames``): the one test of a stream's first piece
    (``first_piece_end``) and of a script's parts (synthesis/runs.sampled_texts), which grow such a text
    with the words next to it where they can."""
    return len(text.encode("utf-8")) < SHORT_TEXT_BYTES


def chunk_frames(ref: PreparedReference, chunk: str, speed: float, hop_length: int) -> int:
    """Total mel frames (reference + generated) for one chunk, as upstream estimates them."""
    ref_frames = len(ref.wave) // hop_length
    local_speed = SHORT_TEXT_SPEED if too_short(chunk) else speed
    ref_bytes = len(ref.text.encode("utf-8"))
    return ref_frames + int(ref_frames / ref_bytes * len(chunk.encode("utf-8")) / local_speed)


def plan_chunks(ref: PreparedReference, text: str, speed: float) -> list[str]:
    return chunk_text(text, max_chunk_chars(ref, speed)) or [text.strip()]


def estimated_samples(ref: PreparedReference, chunks: list[str], speed: float, hop_length: int = 256) -> int:
    """Output length before synthesis (cross-fades ignored: an upper bound)."""
    ref_frames = len(ref.wave) // hop_length
    return sum(chunk_frames(ref, c, speed, hop_length) - ref_frames for c in chunks) * hop_length


# -- streamed jobs: pieces sampled one after another (docs/api.md, "Streaming") ---------------------

FIRST_PIECE_MAX_WORDS = 8  # the first piece ends at the first clause mark within this many words ...
FIRST_PIECE_WORDS = 4  # ... or after this many words: its audio is what the listener waits for
STREAM_ITEM_BYTES = 1_000_000  # RunPod takes a streamed item of at most 1 MB ...
STREAM_ITEM_SHARE = 0.9  # ... of which a piece's audio and timings fill at most this share
TIMINGS_BYTES_PER_S = 4_000  # room for a piece's words and chars as JSON, per second of speech, at the least
# one word's or character's timings in an item as JSON (runpod's json.dumps), its text and labels aside, at the most:
# times to 99999.999 s, places to 99999, the field names and the separator
SPAN_JSON_BYTES = 120
ESCAPED_BYTES_PER_BYTE = 6  # a span's text in JSON: a control character is six bytes (\u0001)
PACE_MARGIN = 0.75  # a piece is sized to be ready once this share of the audio not yet played has played
_CLAUSE_END = re.compile(r"[;:,.!?；：，。！？、…]$")


def max_piece_seconds(bytes_per_sample: float, sample_rate: int) -> float:
    """The most speech one streamed item carries: its audio, base64-encoded, and its timings stay under
    RunPod's 1 MB (about 13 s as wav, pcm or flac, at 24 kHz; 47 s as mp3 or opus)."""
    base64_per_s = bytes_per_sample * sample_rate * 4 / 3
    return STREAM_ITEM_BYTES * STREAM_ITEM_SHARE / (base64_per_s + TIMINGS_BYTES_PER_S)


def timing_bytes_per_byte(words: bool, chars: bool, label_bytes: int = 0) -> float:
    """The most bytes of timings (as JSON) a piece's item carries for each UTF-8 byte of its text as said:
    a character's entry per byte (each written character is said in one byte at least), and a word's per
    two (a word and the space after it), each with its text and ``label_bytes`` (its voice and segment)."""
    span = SPAN_JSON_BYTES + label_bytes
    return chars * (span + ESCAPED_BYTES_PER_BYTE) + words * (span / 2 + ESCAPED_BYTES_PER_BYTE)


def part_piece_seconds(ref: PreparedReference, speed: float, max_seconds: float, timing_bytes: float) -> float:
    """The most speech one streamed item of a part carries: ``max_seconds`` (max_piece_seconds: the audio and
    TIMINGS_BYTES_PER_S of timings a second), less where the part's timings take more (``timing_bytes`` per
    byte said, timing_bytes_per_byte). Timings grow with the text, not the seconds: a voice whose transcript
    is dense, sped up, with every character timed, says 160 characters a second, about 20 kB of timings."""
    said_per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3) * speed
    more = timing_bytes * said_per_second - TIMINGS_BYTES_PER_S
    if more <= 0:
        return max_seconds
    budget = STREAM_ITEM_BYTES * STREAM_ITEM_SHARE  # max_seconds * (audio + TIMINGS_BYTES_PER_S) a second
    return budget / (budget / max_seconds + more)


def piece_limit_bytes(ref: PreparedReference, speed: float, max_seconds: float) -> int:
    """The most text, in UTF-8 bytes as said, one streamed piece holds: upstream's chunk, and no more than
    ``max_seconds`` of speech (max_piece_seconds), as upstream sizes a text's audio (chunk_frames)."""
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    return max(1, min(max_chunk_chars(ref, speed), int(per_second * max_seconds * speed)))


def first_piece_end(text: str, tokens: list[tuple[int, int]], said: NormalizedText | None = None) -> int:
    """How many of ``tokens`` (the reported words) a stream's first piece holds: a clause or a few words,
    so the first audio comes early, and at least ``SHORT_TEXT_BYTES`` as said (``said``: ``text``'s
    normalization; upstream, followed here, samples a shorter text at a third of the speed, and four
    emoji are 16 bytes written and none said)."""
    def long_enough(n: int) -> bool:
        start, end = tokens[0][0], tokens[n - 1][1]
        if said is not None:
            return not too_short(said.spoken[said.to_spoken(start):said.to_spoken(end)].strip())
        return not too_short(text[start:end])

    first = min(FIRST_PIECE_WORDS, len(tokens))
    for i, (s, e) in enumerate(tokens[:FIRST_PIECE_MAX_WORDS]):
        if _CLAUSE_END.search(text[s:e]) and long_enough(i + 1):
            first = i + 1
            break
    while first < len(tokens) and not long_enough(first):
        first += 1
    return first


def piece_end(ref: PreparedReference, text: str, speed: float, tokens: list[tuple[int, int]], start: int,
              seconds: float, max_seconds: float, said: NormalizedText | None = None) -> int:
    """The end (a token index) of the streamed piece that starts at ``tokens[start]`` and holds about
    ``seconds`` of speech: at least one word and ``SHORT_TEXT_BYTES``, at most ``max_seconds`` and upstream's
    chunk size, ending at a clause mark where one falls in its second half.

    At full size, the rest of the text is shared evenly among as few pieces as it needs (each pays for
    the reference prompt, and a last piece of a few words after a long one would leave the listener
    waiting), and a clause mark near the even share is preferred only where the rest still fits in as
    few pieces.

    Sizes are those of the text as said (``said``: ``text``'s normalization; without it, ``text`` is said as
    written), as upstream sizes the audio: "123456789" is 9 bytes written and nearly 90 said, and a piece
    sized by what is written would carry ten times the audio one item can.
    """
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    limit = piece_limit_bytes(ref, speed, max_seconds)
    wanted = min(limit, max(SHORT_TEXT_BYTES, int(per_second * seconds * speed)))
    begin = tokens[start][0]

    def size(j: int) -> int:  # bytes of the piece ending after tokens[j - 1], as said
        end = tokens[j - 1][1]
        if said is None:
            return len(text[begin:end].encode("utf-8"))
        return len(said.spoken[said.to_spoken(begin):said.to_spoken(end)].encode("utf-8"))

    rest = size(len(tokens))
    if rest <= wanted:
        return len(tokens)
    top, lowest = wanted, wanted // 2
    if wanted == limit:
        pieces_left = -(-rest // limit)
        wanted = -(-rest // pieces_left)
        top, lowest = limit, max(wanted // 2, rest - (pieces_left - 1) * limit)
    fitting: dict[int, int] = {}  # each end that fits, and its size
    for j in range(start + 1, len(tokens) + 1):
        bytes_said = size(j)
        if bytes_said > top:
            break
        fitting[j] = bytes_said
    if not fitting:  # one word longer than a piece: alone
        return start + 1
    ends = [j for j, n in fitting.items() if n >= lowest] or [max(fitting)]
    clause_ends = [j for j in ends if _CLAUSE_END.search(text[tokens[j - 1][0]:tokens[j - 1][1]])]
    return min(clause_ends or ends, key=lambda j: (abs(fitting[j] - wanted), -j))


def cut_long_readings(said: NormalizedText, tokens: list[tuple[int, int]], limit: int
                      ) -> tuple[NormalizedText, list[tuple[int, int]]]:
    """``tokens`` (spans of ``said.written``, none inside a reading: ``uncut_spans``) with each one said in more
    than ``limit`` bytes cut into shorter tokens, and ``said`` with the readings so cut split at the cuts.

    Pieces are cut between tokens, so one token said longer than a streamed item holds ("1234…" of 60 digits,
    a 1,500-letter word) was one item of several MB, that RunPod drops. Such a token is cut as the unstreamed
    job's chunker cuts its text: between the readings it holds ("555-|123-|4567"), where one is still too
    long between the words it is said as ("one two three, | four"), and where one word alone is too long
    between its characters. Those are then tokens like any other (``piece_end`` shares them out among pieces).
    Inside a reading the written text has no place of its own for a cut: the reading is split where the cut's
    share of its spoken words (of its characters, for a cut inside a word) falls in its written letters and
    digits, between the places where written and spoken meet (``_reading_anchors``): a number said digit by
    digit is cut between the very digits said on either side, and a separator goes with what it follows.
    """
    spoken, cum = said.spoken, [0]
    for ch in spoken:
        cum.append(cum[-1] + len(ch.encode("utf-8")))
    out: list[tuple[int, int]] = []
    cuts: list[tuple[int, int]] = []  # (written, spoken) positions where a token is cut
    for a, b in tokens:
        s0, s1 = said.to_spoken(a), said.to_spoken(b)
        if _stripped_bytes(spoken, cum, s0, s1) <= limit:
            out.append((a, b))
            continue
        candidates = _reading_cuts(said, s0, s1)
        stretches = [(s0, a, s1, b)]  # spoken start, written start, spoken end, written end
        for kind in _CUT_KINDS:
            finer = []
            for ps, pw, qs, qw in stretches:
                if _stripped_bytes(spoken, cum, ps, qs) > limit:
                    for p, w, where in candidates:
                        if where >= kind and ps < p < qs and pw < w < qw:  # written positions rising
                            finer.append((ps, pw, p, w))
                            ps, pw = p, w
                finer.append((ps, pw, qs, qw))
            stretches = finer
        out.extend((pw, qw) for _, pw, _, qw in stretches)
        cuts.extend((pw, ps) for ps, pw, _, _ in stretches[1:])
    return _split_rewrites(said, cuts), out


# where a cut of a long token falls, best first: between readings (or written words), between the groups
# of one reading ("555-|123": _reading_anchors), between its spoken words, between characters, and before a
# mark ("555|-123"), which goes with what it follows
_BETWEEN_READINGS, _BETWEEN_GROUPS, _BETWEEN_WORDS, _BETWEEN_CHARACTERS, _BEFORE_A_MARK = 4, 3, 2, 1, 0
_CUT_KINDS = (_BETWEEN_READINGS, _BETWEEN_GROUPS, _BETWEEN_WORDS, _BETWEEN_CHARACTERS, _BEFORE_A_MARK)


def _reading_cuts(said: NormalizedText, s0: int, s1: int) -> list[tuple[int, int, int]]:
    """Where ``said.spoken[s0:s1]`` could be cut, in order: (spoken position, written position, kind)."""
    spoken, written = said.spoken, said.written
    readings = [r for r in said.rewrites if r.spoken_start < s1 and r.spoken_end > s0]
    starts = {r.spoken_start for r in readings}
    bounds = starts | {r.spoken_end for r in readings}
    inside = {p for r in readings for p in range(r.spoken_start + 1, r.spoken_end)}

    def kind(p: int, between: int) -> int:
        mark = not spoken[p].isalnum() and not spoken[p].isspace() and p not in starts
        return _BEFORE_A_MARK if mark else between if spoken[p - 1].isspace() or p in bounds else _BETWEEN_CHARACTERS

    out = []
    for p in range(s0 + 1, s1):  # outside every reading, written and spoken are the same text
        if p not in inside and (p in bounds or not spoken[p].isspace()):
            out.append((p, said.to_written(p, p)[0], kind(p, _BETWEEN_READINGS)))
    for r in readings:
        anchors = _reading_anchors(said, r)
        for (pa, wa), (pb, wb) in zip(anchors, anchors[1:]):
            # a cut's share of the segment's spoken words (characters) falls at that share of its written
            # letters and digits: "-" and "$" are said in no word of their own
            alnum = [w for w in range(wa, wb) if written[w].isalnum()]
            words = len(spoken[pa:pb].split())
            before = 0  # words of spoken[pa:p]
            for p in range(pa + 1, pb):
                if spoken[p].isspace():
                    continue
                between = spoken[p - 1].isspace()
                before += between
                k = round((before / words if between else (p - pa) / (pb - pa)) * len(alnum))
                if 0 < k < len(alnum):
                    out.append((p, alnum[k], kind(p, _BETWEEN_WORDS)))
            if r.spoken_start < pb < r.spoken_end:
                out.append((pb, wb, kind(pb, _BETWEEN_GROUPS)))
    return sorted(out)


def _reading_anchors(said: NormalizedText, r) -> list[tuple[int, int]]:
    """Places where reading ``r``'s spoken and written texts meet, as (spoken, written) positions: its ends,
    and, where its written groups ("555-123-4567") are as many as its spoken clauses ("five five five, one
    two three, ..."), the start of each."""
    spoken, written = said.spoken, said.written
    groups = [w for w in range(r.written_start + 1, r.written_end)
              if not written[w - 1].isalnum() and written[w].isalnum()]
    clauses, last = [], ""  # last: the latest character that is not a space
    for p in range(r.spoken_start + 1, r.spoken_end):
        if not spoken[p - 1].isspace():
            last = spoken[p - 1]
        elif not spoken[p].isspace() and _CLAUSE_END.search(last):
            clauses.append(p)
    inner = list(zip(clauses, groups)) if len(groups) == len(clauses) else []
    return [(r.spoken_start, r.written_start), *inner, (r.spoken_end, r.written_end)]


def _stripped_bytes(text: str, cum: list[int], start: int, end: int) -> int:
    """UTF-8 bytes of ``text[start:end].strip()``, ``cum`` holding the bytes of each prefix of ``text``."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return cum[end] - cum[start]


def _split_rewrites(said: NormalizedText, cuts: list[tuple[int, int]]) -> NormalizedText:
    """``said`` with each reading that a cut (written, spoken) falls inside split into two readings there."""
    inner = [(w, p) for w, p in sorted(cuts) if _inside_a_reading(said, w, p)]
    if not inner:
        return said
    rewrites, i = [], 0
    for r in said.rewrites:
        ws, ss = r.written_start, r.spoken_start
        while i < len(inner) and inner[i][0] < r.written_end:
            w, p = inner[i]
            if w > r.written_start:
                rewrites.append(Rewrite(ws, w, ss, p))
                ws, ss = w, p
            i += 1
        rewrites.append(Rewrite(ws, r.written_end, ss, r.spoken_end))
    return NormalizedText(said.written, said.spoken, tuple(rewrites))


def _inside_a_reading(said: NormalizedText, written: int, spoken: int) -> bool:
    return any(r.written_start < written < r.written_end and r.spoken_start < spoken < r.spoken_end
               for r in said.rewrites_over(written, written + 1))


def pause_lengths_ms(ms: int, max_seconds: float) -> list[int]:
    """A pause of ``ms`` milliseconds as the silences of as few streamed items as hold it, in even shares:
    adjacent pauses add up ("[pause:10s][pause:10s]" is 20 s), and 20 s of wav is one 1.3 MB item."""
    most = max(1, int(max_seconds * 1000))
    n = -(-ms // most)
    return [ms // n + (k < ms % n) for k in range(n)]


class StreamPacer:
    """How much speech a stream's next piece may hold, from what the stream has measured so far.

    A piece is sampled while the audio before it plays, so it should be ready before that audio runs out;
    but each piece is sampled with the reference as its prompt, so fewer, longer pieces make the whole
    sooner. The pacer sizes the next piece to fit the audio not yet played (times ``PACE_MARGIN``), given
    this stream's measured sampling time per second of frames (prompt included) and alignment time per
    second of speech. These are wall times, so the work of other jobs in flight slows them down alike.
    Where that is less than the piece before, the stream is falling behind (a slow machine, or a busy one:
    the wait behind other jobs' work counts): playback will wait whatever the size, and waits least in
    all with the fewest pieces, so the next one is full.

    Playback is taken to start when the first audio is handed out (``handed_out``), and to run without pause.
    """

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds  # the most speech one piece holds (max_piece_seconds)
        self.made_s = 0.0  # audio made so far: pieces and pauses
        self.first_out: float | None = None  # when the first audio was handed out
        self.sampling_per_s: float | None = None  # wall seconds per second of frames sampled (prompt included)
        self.aligning_per_s = 0.0  # wall seconds per second of speech aligned
        self.last_s = 0.0  # the latest piece's speech

    def made(self, seconds: float, piece: bool = True) -> None:
        self.made_s += seconds
        if piece:
            self.last_s = seconds

    def handed_out(self, now: float) -> None:
        if self.first_out is None:
            self.first_out = now

    def sampled(self, wall_s: float, seconds: float, ref_seconds: float) -> None:
        self.sampling_per_s = wall_s / max(ref_seconds + seconds, 1e-3)

    def aligned(self, wall_s: float, seconds: float) -> None:
        self.aligning_per_s = wall_s / max(seconds, 1e-3)

    def next_seconds(self, now: float, ref_seconds: float) -> float:
        """Speech the next piece, sampled with a reference of ``ref_seconds``, may hold."""
        if self.sampling_per_s is None:  # a piece is cut once the one before has its audio: not reached
            return self.max_seconds
        played = now - self.first_out if self.first_out is not None else 0.0
        left = self.made_s - played
        fits = (left * PACE_MARGIN - self.sampling_per_s * ref_seconds) / (self.sampling_per_s + self.aligning_per_s)
        log.debug("next piece: %.2f s of audio left to play, sampling %.3f s per s of frames, aligning %.3f s per s:"
                  " fits %.2f s after a piece of %.2f s", left, self.sampling_per_s, self.aligning_per_s, fits,
                  self.last_s)
        if fits < self.last_s:  # falling behind: playback waits whatever the size, and waits least in all
            return self.max_seconds  # with the fewest pieces
        return min(self.max_seconds, fits)
