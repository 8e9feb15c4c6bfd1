"""Text cut into the pieces F5-TTS samples, and their lengths in frames, as upstream sizes them."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from f5_worker.tts.reference import PreparedReference

if TYPE_CHECKING:
    from f5_worker.text.normalized_text import NormalizedText

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
        piece = sentence + " " if len(sentence[-1].encode("utf-8")) == 1 else sentence
        if len(current.encode("utf-8")) + len(sentence.encode("utf-8")) <= max_chars:
            current += piece
        else:
            if current:
                chunks.append(current.strip())
            current = piece
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` bytes, cut at spaces; inside a word only when it alone is longer."""
    def fits(piece: str) -> bool:
        return len(piece.encode("utf-8")) <= max_chars

    words = []
    for word in sentence.split():
        part = ""
        for ch in word:
            if part and not fits(part + ch):
                words.append(part)
                part = ""
            part += ch
        words.append(part)
    pieces, current = [], ""
    for word in words:
        joined = f"{current} {word}" if current else word
        if current and not fits(joined):
            pieces.append(current)
            current = word
        else:
            current = joined
    if current:
        pieces.append(current)
    return pieces


def max_chunk_chars(ref: PreparedReference, speed: float) -> int:
    """Upstream sizes chunks so reference + chunk stays under about 22 s."""
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    return max(1, int(per_second * (22 - ref.duration) * speed))


def too_short(text: str) -> bool:
    """Whether upstream draws ``text`` out (``chunk_frames``): the one test of a stream's first piece
    (``first_piece_end``) and of a script's parts (actions/script.sampled_texts), which grow such a text
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
TIMINGS_BYTES_PER_S = 4_000  # a piece's words and chars as JSON, per second of speech, at the most
PACE_MARGIN = 0.75  # a piece is sized to be ready once this share of the audio not yet played has played
_CLAUSE_END = re.compile(r"[;:,.!?；：，。！？、…]$")


def max_piece_seconds(bytes_per_sample: float, sample_rate: int) -> float:
    """The most speech one streamed item carries: its audio, base64-encoded, and its timings stay under
    RunPod's 1 MB (about 13 s as wav, pcm or flac, at 24 kHz; 47 s as mp3 or opus)."""
    base64_per_s = bytes_per_sample * sample_rate * 4 / 3
    return STREAM_ITEM_BYTES * STREAM_ITEM_SHARE / (base64_per_s + TIMINGS_BYTES_PER_S)


def first_piece_end(text: str, tokens: list[tuple[int, int]]) -> int:
    """How many of ``tokens`` (the reported words) a stream's first piece holds: a clause or a few words,
    so the first audio comes early, and at least ``SHORT_TEXT_BYTES`` (upstream, followed here, samples a
    shorter text at a third of the speed)."""
    def long_enough(n: int) -> bool:
        return not too_short(text[tokens[0][0]:tokens[n - 1][1]])

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

    Sizes are those of the text as said (``said``: ``text``'s normalisation; without it, ``text`` is said as
    written), as upstream sizes the audio: "123456789" is 9 bytes written and nearly 90 said, and a piece
    sized by what is written would carry ten times the audio one item can.
    """
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    limit = max(1, min(max_chunk_chars(ref, speed), int(per_second * max_seconds * speed)))
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
