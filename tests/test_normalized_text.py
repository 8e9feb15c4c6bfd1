"""The map between a text as written and as said (``text.normalized_text``): spans of the spoken text found
in the written one and back, a part of the text keeping the whole text's readings, two passes as one."""

from __future__ import annotations

import pytest

from f5_worker.text.normalize import normalize
from f5_worker.text.normalized_text import NormalizedText, Rewrite, compose

PAY = NormalizedText("Pay $5 now", "Pay five dollars now", (Rewrite(4, 6, 4, 16),))


def test_rewrites_map_spoken_spans_back_to_what_was_written():
    norm = normalize("Pay $4.99 now", "en")
    assert norm.spoken == "Pay four dollars ninety-nine cents now"
    (rewrite,) = norm.rewrites
    assert (rewrite.written_start, rewrite.written_end) == (4, 9)
    four = norm.spoken.index("four")
    assert norm.to_written(four, four + 4) == (4, 9)  # any word of the reading: the whole amount
    now = norm.spoken.index("now")
    assert norm.to_written(now, now + 3) == (10, 13)  # text outside rewrites: shifted, same length
    assert norm.to_written(0, 3) == (0, 3)


def test_positions_outside_rewrites_move_by_what_the_rewrites_before_them_added():
    assert PAY.to_spoken(0) == 0
    assert PAY.spoken[PAY.to_spoken(7):] == "now"
    assert PAY.rewrites_over(0, 4) == [] and PAY.rewrites_over(5, 6) == list(PAY.rewrites)


def test_a_part_of_the_text_keeps_the_readings_the_whole_gave_it():
    assert PAY.within(4, 6) == NormalizedText("$5", "five dollars", (Rewrite(0, 2, 0, 12),))
    assert PAY.within(7, 10) == NormalizedText("now", "now", ())
    with pytest.raises(ValueError, match="straddles"):
        PAY.within(5, 10)
    # words one rewrite covers are one span, so a text cut between spans is never cut inside a reading
    assert PAY.uncut_spans([(0, 3), (4, 5), (5, 6), (7, 10)]) == [(0, 3), (4, 6), (7, 10)]


def test_two_passes_compose_into_one_map_from_the_first_text_to_the_last():
    first = NormalizedText("x 1", "x one", (Rewrite(2, 3, 2, 5),))
    apart = compose(first, NormalizedText("x one", "X one", (Rewrite(0, 1, 0, 1),)))
    assert apart == NormalizedText("x 1", "X one", (Rewrite(0, 1, 0, 1), Rewrite(2, 3, 2, 5)))
    # a second rewrite over the first one's reading is one rewrite of what was written
    over = compose(first, NormalizedText("x one", "x ONE", (Rewrite(2, 5, 2, 5),)))
    assert over == NormalizedText("x 1", "x ONE", (Rewrite(2, 3, 2, 5),))
