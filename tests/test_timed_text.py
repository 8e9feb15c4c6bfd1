"""The response's timing values (``f5_worker.timed_text``): what a word or character reports."""

from __future__ import annotations

from f5_worker.timed_text import TimedSpan, floor_ms


def test_a_span_reports_milliseconds_rounded_down_and_its_voice_only_where_it_has_one():
    word = TimedSpan("hi", 0.1239, 0.4561, 0.87654, 3, 5)
    assert word.to_dict() == {"word": "hi", "start": 0.123, "end": 0.456, "confidence": 0.877,
                              "char_start": 3, "char_end": 5}
    char = TimedSpan("h", 0.1, 0.2, 1.0, 3, 4, "char", voice="ann", segment=2)
    assert char.to_dict()["char"] == "h" and (char.to_dict()["voice"], char.to_dict()["segment"]) == ("ann", 2)
    assert floor_ms(0.0015) == 0.001 and floor_ms(2.999) == 2.999  # never rounded up past the audio's end


def test_a_time_of_whole_milliseconds_is_reported_as_it_is():
    """1.005 s is 1004.9999999999999 ms as a float: rounded down without care, a word at 1.005 s would start at
    1.004. Every millisecond of the first 100 s is checked (seven in a thousand go wrong that way)."""
    for ms in range(100_000):
        seconds = ms / 1000
        assert floor_ms(seconds) == seconds, ms
    word = TimedSpan("hi", 1.005, 2.002, 1.0, 0, 2).to_dict()
    assert (word["start"], word["end"]) == (1.005, 2.002)
