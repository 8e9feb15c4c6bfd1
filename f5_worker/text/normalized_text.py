"""A text as written and as said, and the map between the two (``NormalizedText``).

The normalizer rewrites spans of the text ("$4.99" -> "four dollars ninety-nine cents"); each ``Rewrite``
records the span it replaced and the span it produced, and outside them both texts are the same. With that
map, a span of the spoken text (an aligned word) is found in the text as written, a position of the written
text in the spoken one, and a part of the text (a streamed piece) keeps the readings the whole text gave it.
Kept apart from the rules that make the rewrites, so that what only maps (the chunker, the timings of the
written words) does not depend on how a text is read.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Rewrite:
    """A span of the text as written and the span of the spoken text that replaces it."""

    written_start: int
    written_end: int
    spoken_start: int
    spoken_end: int


@dataclass(frozen=True)
class NormalizedText:
    """A text as written and as said; outside ``rewrites`` (ordered, non-overlapping) both are the same."""

    written: str
    spoken: str
    rewrites: tuple[Rewrite, ...]

    def to_written(self, spoken_start: int, spoken_end: int) -> tuple[int, int]:
        """The span of the written text that a span of the spoken text comes from: a span inside or
        across a rewrite stands for the whole of what that rewrite replaced."""
        start = self._map(spoken_start, end=False)
        end = self._map(spoken_end, end=True) if spoken_end > spoken_start else start
        return start, max(start, end)

    @cached_property
    def _spoken_starts(self) -> list[int]:
        return [r.spoken_start for r in self.rewrites]

    @cached_property
    def _written_ends(self) -> list[int]:
        return [r.written_end for r in self.rewrites]

    def rewrites_over(self, written_start: int, written_end: int) -> list[Rewrite]:
        """The rewrites that overlap a span of the written text, in order."""
        out = []
        for r in self.rewrites[bisect.bisect_right(self._written_ends, written_start):]:
            if r.written_start >= written_end:
                break
            out.append(r)
        return out

    def to_spoken(self, written_pos: int) -> int:
        """Where a position of the written text outside every rewrite sits in the spoken text."""
        i = bisect.bisect_right(self._written_ends, written_pos) - 1
        return written_pos + (self.rewrites[i].spoken_end - self.rewrites[i].written_end if i >= 0 else 0)

    def within(self, start: int, end: int) -> NormalizedText:
        """The part of this normalization that reads ``written[start:end]``, a span no rewrite straddles
        (see ``uncut_spans``): a streamed piece is said as the whole text says it, not normalized alone,
        where a reading could change with what is cut off ("$5 | million", "March 15, | 2024")."""
        s0, s1 = self.to_spoken(start), self.to_spoken(end)
        inside = tuple(Rewrite(r.written_start - start, r.written_end - start, r.spoken_start - s0, r.spoken_end - s0)
                       for r in self.rewrites_over(start, end))
        if any(r.written_start < 0 or r.written_end > end - start for r in inside):
            raise ValueError(f"a rewrite straddles the span {start}-{end}")
        return NormalizedText(self.written[start:end], self.spoken[s0:s1], inside)

    def uncut_spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``spans`` of the written text (its words, in order), those one rewrite covers merged into one
        and widened to the whole rewrite, so a text cut between them is never cut inside a reading."""
        out: list[tuple[int, int]] = []
        for start, end in spans:
            for r in self.rewrites_over(start, end):
                start, end = min(start, r.written_start), max(end, r.written_end)
            while out and out[-1][1] > start:
                start = min(start, out.pop()[0])
            out.append((start, end))
        return out

    def _map(self, pos: int, *, end: bool) -> int:
        i = bisect.bisect_right(self._spoken_starts, pos - 1 if end else pos) - 1
        if i >= 0:
            r = self.rewrites[i]
            inside = r.spoken_start < pos <= r.spoken_end if end else r.spoken_start <= pos < r.spoken_end
            if inside:
                return r.written_end if end else r.written_start
            if pos >= r.spoken_end:
                return pos + r.written_end - r.spoken_end
        return pos


def compose(first: NormalizedText, second: NormalizedText) -> NormalizedText:
    """``first`` followed by ``second`` (which normalized ``first.spoken``) as one normalization.

    Rewrites of either pass that overlap in the middle text are merged into one; the text between them
    is copied by both passes, so each merged rewrite's ends are found by counting how much the rewrites
    before it lengthened or shortened the text.
    """
    spans = sorted([(r.spoken_start, r.spoken_end, 0, r) for r in first.rewrites] +
                   [(r.written_start, r.written_end, 1, r) for r in second.rewrites], key=lambda x: (x[0], x[1]))
    clusters: list[list] = []
    for span in spans:
        if clusters and span[0] < max(c[1] for c in clusters[-1]) or \
                (clusters and span[0] == span[1] == max(c[1] for c in clusters[-1])):
            clusters[-1].append(span)
        else:
            clusters.append([span])
    rewrites = []
    grow_first = grow_second = 0  # how much the rewrites before the cluster lengthened the text, per pass
    for cluster in clusters:
        a = min(c[0] for c in cluster)
        b = max(c[1] for c in cluster)
        w_a, s_a = a - grow_first, a + grow_second
        inner_first = sum((r.spoken_end - r.spoken_start) - (r.written_end - r.written_start)
                          for _, _, k, r in cluster if k == 0)
        inner_second = sum((r.spoken_end - r.spoken_start) - (r.written_end - r.written_start)
                           for _, _, k, r in cluster if k == 1)
        w_b, s_b = w_a + (b - a) - inner_first, s_a + (b - a) + inner_second
        grow_first += inner_first
        grow_second += inner_second
        if first.written[w_a:w_b] != second.spoken[s_a:s_b]:
            rewrites.append(Rewrite(w_a, w_b, s_a, s_b))
    return NormalizedText(first.written, second.spoken, tuple(rewrites))
