"""Text cut into the pieces F5-TTS samples, and their lengths in frames, as upstream sizes them."""

from __future__ import annotations

import re

from f5_worker.tts.reference import PreparedReference

# upstream: sentences end at these marks (ASCII followed by a space, CJK directly)
_SENTENCE_SPLIT = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")



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


def chunk_frames(ref: PreparedReference, chunk: str, speed: float, hop_length: int) -> int:
    """Total mel frames (reference + generated) for one chunk, as upstream estimates them."""
    ref_frames = len(ref.wave) // hop_length
    local_speed = 0.3 if len(chunk.encode("utf-8")) < 10 else speed
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
SHORT_TEXT_BYTES = 10  # upstream draws a text shorter than this out slowly (chunk_frames): no such first piece
PIECE_SECONDS = 12.0  # later pieces hold at most about this much speech: one item stays under RunPod's 1 MB as wav
PIECE_GROWTH = 2.0  # each piece holds at most this many times the text of the one before (until PIECE_SECONDS)
_CLAUSE_END = re.compile(r"[;:,.!?；：，。！？、…]$")


def plan_pieces(ref: PreparedReference, text: str, speed: float, tokens: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(start, end)`` spans of ``text`` for a streamed job, cut between ``tokens`` (the reported words),
    so no word straddles two pieces.

    The first piece is a clause or a few words (at least ``SHORT_TEXT_BYTES``: upstream, followed here,
    samples a shorter text at a third of the speed), so the first audio comes early; the later ones are sized
    for throughput (each is sampled with the reference as its prompt, so small pieces cost more in
    total), up to ``PIECE_SECONDS`` of speech and upstream's chunk size, preferring to end at a clause mark.
    They grow to that size by at most ``PIECE_GROWTH`` a piece: a piece is made while the one before it
    plays, so a second piece ten times the first's length would leave a gap in playback wherever making
    speech is not ten times faster than speaking it.
    """
    if not tokens:
        return [(0, len(text))] if text.strip() else []
    per_second = len(ref.text.encode("utf-8")) / max(ref.duration, 1e-3)
    limit = max(1, min(max_chunk_chars(ref, speed), int(per_second * PIECE_SECONDS * speed)))
    def long_enough(n: int) -> bool:
        return len(text[tokens[0][0]:tokens[n - 1][1]].encode("utf-8")) >= SHORT_TEXT_BYTES

    first = min(FIRST_PIECE_WORDS, len(tokens))
    for i, (s, e) in enumerate(tokens[:FIRST_PIECE_MAX_WORDS]):
        if _CLAUSE_END.search(text[s:e]) and long_enough(i + 1):
            first = i + 1
            break
    while first < len(tokens) and not long_enough(first):
        first += 1
    pieces = [(0, first)]
    previous = len(text[tokens[0][0]:tokens[first - 1][1]].encode("utf-8"))
    i = first
    while i < len(tokens):
        j, last_clause = i + 1, None
        allowed = min(limit, max(SHORT_TEXT_BYTES, int(previous * PIECE_GROWTH)))
        while j < len(tokens) and len(text[tokens[i][0]:tokens[j][1]].encode("utf-8")) <= allowed:
            if _CLAUSE_END.search(text[tokens[j - 1][0]:tokens[j - 1][1]]):
                last_clause = j
            j += 1
        if j < len(tokens) and last_clause is not None and last_clause - i >= (j - i) // 2:
            j = last_clause
        pieces.append((i, j))
        previous = len(text[tokens[i][0]:tokens[j - 1][1]].encode("utf-8"))
        i = j
    return [(tokens[a][0], tokens[b - 1][1]) for a, b in pieces]
