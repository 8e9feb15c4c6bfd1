"""Timings aligned on the text as said, turned into timings of the words and characters as written.

The aligner times what the model said ("four dollars ninety-nine cents"); a response reports the words the
request wrote ("$4.99"). The map between the two texts (``text.normalized_text``) says which spoken words
each written word became; see ``written_timings`` for how their times are shared. ``as_written`` turns a
whole alignment (words, characters and flagged words) over, as a synthesized part or a streamed piece needs.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from f5_worker.text.normalized_text import NormalizedText
from f5_worker.text.tokens import token_spans
from f5_worker.timed_text import Alignment, TimedSpan


def written_timings(norm: NormalizedText, words: list[TimedSpan], chars: list[TimedSpan]
                    ) -> tuple[list[TimedSpan], list[TimedSpan]]:
    """Timings aligned on ``norm.spoken`` turned into timings of the words and characters as written.

    Each written word (the aligner's tokens: whitespace-separated, CJK characters alone) is timed from
    the start of the first spoken word it became to the end of the last one, with the lowest of their
    confidences: "$4.99" is one word from "four" to "cents". A word the rewrites did not touch keeps its
    times exactly. A rewrite that spans several written words ("+1 555-123-4567" read as one) shares
    its time among them by their length. Characters of a rewritten word are spread evenly over its time:
    no sound in "four dollars" belongs to the "$" or the "9" more than to another, so an even share is
    the only honest place for each; characters outside rewrites keep their aligned times.
    """
    written = norm.written
    spans = token_spans(written)
    spoken_words = sorted(words, key=lambda w: w.char_start)
    # Each spoken word, mapped back to the written text.
    mapped = [(norm.to_written(w.char_start, w.char_end), w) for w in spoken_words]
    ends = [we for (_, we), _ in mapped]  # never decrease: the spoken words are in order
    out_words: list[TimedSpan] = []
    cursor = 0.0
    parts_of: list[list[TimedSpan]] = []
    for ts, te in spans:
        parts = []
        for (ws, we), w in mapped[bisect.bisect_right(ends, ts):]:
            if ws >= te:
                break
            if we > ts:
                parts.append(w)
        parts_of.append(parts)
    for (ts, te), parts in zip(spans, parts_of, strict=True):
        text = written[ts:te]
        if parts:
            start, end = _share(norm, ts, te, parts)
            start = max(start, cursor)
            end = max(end, start)
            conf = min(p.confidence for p in parts)
            extra = {"voice": parts[0].voice, "segment": parts[0].segment}
        else:
            start = end = out_words[-1].end if out_words else cursor
            conf = out_words[-1].confidence if out_words else 1.0
            extra = {"voice": out_words[-1].voice, "segment": out_words[-1].segment} if out_words else {}
        out_words.append(TimedSpan(text, start, end, conf, ts, te, **extra))
        cursor = start
    return out_words, _written_chars(norm, out_words, chars)


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


def _share(norm: NormalizedText, ts: int, te: int, parts: list[TimedSpan]) -> tuple[float, float]:
    """The time of written word [ts, te) from the spoken words it maps to; where a rewrite reaches past
    the word, the word gets the share of the rewrite's time that its characters are of the rewrite."""
    start, end = parts[0].start, max(p.end for p in parts)
    for r in norm.rewrites_over(ts, te):
        if r.written_start < ts or r.written_end > te:
            inner = [p for p in parts if r.spoken_start <= p.char_start < r.spoken_end or
                     r.spoken_start < p.char_end <= r.spoken_end]
            if not inner:
                continue
            r_start, r_end = inner[0].start, max(p.end for p in inner)
            width = r.written_end - r.written_start
            a = (max(ts, r.written_start) - r.written_start) / width
            b = (min(te, r.written_end) - r.written_start) / width
            piece = (r_start + a * (r_end - r_start), r_start + b * (r_end - r_start))
            if r.written_start < ts:
                start = piece[0]
            if r.written_end > te:
                end = piece[1]
    return start, end


def _written_chars(norm: NormalizedText, words: list[TimedSpan], chars: list[TimedSpan]) -> list[TimedSpan]:
    """Characters of the written words: outside rewrites, the aligned character at the same place in
    the spoken text; inside, an even share of the word's time (see ``written_timings``)."""
    by_spoken = {c.char_start: c for c in chars}
    rewrites = norm.rewrites
    wstarts = [r.written_start for r in rewrites]
    out: list[TimedSpan] = []
    cursor = 0.0  # character starts never go backwards, even where words overlap
    for word in words:
        positions = range(word.char_start, word.char_end)
        rewritten = []
        for p in positions:
            i = bisect.bisect_right(wstarts, p) - 1
            inside = i >= 0 and rewrites[i].written_start <= p < rewrites[i].written_end
            rewritten.append(inside)
        n_spread = sum(rewritten)
        step = (word.end - word.start) / n_spread if n_spread else 0.0
        k = 0
        cursor = max(cursor, word.start)
        for p, inside in zip(positions, rewritten, strict=True):
            ch = norm.written[p]
            if inside:
                s = word.start + k * step
                e = word.start + (k + 1) * step
                k += 1
                conf = word.confidence
            else:
                aligned = by_spoken.get(norm.to_spoken(p))
                s, e, conf = (aligned.start, aligned.end, aligned.confidence) if aligned else (cursor, cursor,
                                                                                                word.confidence)
            s = max(min(max(s, word.start), word.end), cursor)
            e = max(min(e, word.end), s)
            out.append(replace(word, text=ch, start=s, end=e, confidence=conf, char_start=p, char_end=p + 1,
                               kind="char"))
            cursor = s
    return out
