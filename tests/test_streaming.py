"""Streamed synthesis (``stream: true``): how the text is cut into pieces, the items a job yields, and a
streaming worker under runpod-python's own worker loop against the stand-in platform: items posted to
``/stream`` as they are made, other jobs' results as RunPod aggregates them, and a cancel mid-stream.

The item properties over runpod's local ``/run`` + ``/stream`` are in tests/test_runpod_local.py.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_WAV, REPO_ROOT, decode_b64_audio, running, wait_for_log
from runpod_platform import RunPodJobApi

STREAM_TEXT = ("Hello there, my friend. This text goes on for a while, so that it needs more than one piece "
               "to be spoken; and then a few more words.")


def check_stream(items: list[dict], text: str, fmt: str = "wav") -> list[np.ndarray]:
    """What every streamed job's items must satisfy; returns each piece's decoded audio."""
    *pieces, done = items
    assert [i["seq"] for i in items] == list(range(len(items)))
    assert done["done"] is True and "audio_base64" not in done and len(pieces) == done["pieces"] >= 2
    waves, offset, words, chars = [], 0.0, [], []
    for piece in pieces:
        assert "done" not in piece and piece["format"] == fmt
        wave, sr = decode_b64_audio(piece["audio_base64"])  # each item decodes on its own
        assert sr == piece["sample_rate"] == 24000
        assert len(wave) / sr == pytest.approx(piece["duration"], abs=1e-6)
        assert piece["offset"] == pytest.approx(offset, abs=1e-6)  # contiguous
        offset += piece["duration"]
        start, end = piece["offset"], piece["offset"] + piece["duration"]
        for spans in (piece["words"], piece.get("chars", [])):
            starts = [s["start"] for s in spans]
            assert starts == sorted(starts)  # rise
            assert all(start - 1e-9 <= s["start"] <= s["end"] <= end + 1e-9 for s in spans)  # inside the piece
        assert all(piece["text_start"] <= w["char_start"] < w["char_end"] <= piece["text_end"] for w in piece["words"])
        waves.append(wave)
        words += piece["words"]
        chars += piece.get("chars", [])
    # no word straddles two items: each word of the text once, in order, with its place in the whole text
    assert [(w["word"], w["char_start"], w["char_end"]) for w in words] == \
           [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    assert all(text[w["char_start"]:w["char_end"]] == w["word"] for w in words)
    if chars:
        assert [c["char_start"] for c in chars] == [i for i, ch in enumerate(text) if not ch.isspace()]
    joined = np.concatenate(waves)
    assert len(joined) / 24000 == pytest.approx(sum(p["duration"] for p in pieces), abs=1e-6) \
           == pytest.approx(done["duration"], abs=1e-3)
    assert done["timing"]["first_audio_ms"] <= done["timing"]["total_ms"]
    return waves


# -- the pieces ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_ref(worker):
    return worker.references.default_voice(0.1)


WAV_PIECE_S = 13.0  # about max_piece_seconds for wav at 24 kHz


def cut(ref, text: str, sizes, max_seconds: float = WAV_PIECE_S) -> list[tuple[int, int]]:
    """A text's pieces as a stream cuts them, each later piece asked for the next of ``sizes`` seconds."""
    from f5_worker.text.tokens import tokenize
    from f5_worker.tts.chunking import first_piece_end, piece_end

    tokens = [(t.char_start, t.char_end) for t in tokenize(text)]
    sizes = iter(sizes)
    ends = [first_piece_end(text, tokens)]
    while ends[-1] < len(tokens):
        ends.append(piece_end(ref, text, 1.0, tokens, ends[-1], next(sizes), max_seconds))
    return [(tokens[a][0], tokens[b - 1][1]) for a, b in zip([0, *ends], ends)]


@pytest.mark.parametrize("text, first", [
    (STREAM_TEXT, "Hello there,"),
    ("One two three four five six seven eight nine ten eleven.", "One two three four"),
    ("Short.", "Short."),
    ("Yes, I will do that for you today. And then more.", "Yes, I will do that for you today."),
    ("Oh, no. It is not what we wanted, not at all.", "Oh, no. It is not what we wanted,"),
    ("Oh no it is not what we wanted at all today.", "Oh no it is"),
    ("你好，世界。今天天气很好。", "你好，世界。"),
])
def test_the_first_piece_is_a_clause_or_a_few_words(default_ref, text, first):
    assert text[slice(*cut(default_ref, text, iter(lambda: 1.0, None))[0])] == first


def test_the_first_piece_holds_ten_bytes_as_said_not_as_written():
    """"😀 😀 😀 Hi," is 17 bytes written and "Hi," said: upstream draws a text that short out to a third of its
    speed, so the first piece goes on to the next clause."""
    from f5_worker.text.normalize import normalize
    from f5_worker.text.tokens import token_spans
    from f5_worker.tts.chunking import first_piece_end

    text = "😀 😀 😀 Hi, there my friend, how are you."
    said = normalize(text, "en")
    tokens = said.uncut_spans(token_spans(text))
    assert text[:tokens[first_piece_end(text, tokens) - 1][1]] == "😀 😀 😀 Hi,"
    assert text[:tokens[first_piece_end(text, tokens, said) - 1][1]] == "😀 😀 😀 Hi, there my friend,"


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "word,", "longer", "sentence.", "x" * 30, "ok;", "$5", "日本語。"]),
                      min_size=1, max_size=120),
       sizes=st.lists(st.floats(0.0, 40.0), min_size=120, max_size=120))
def test_pieces_cut_between_words_each_word_in_one_piece_none_over_the_limit(default_ref, words, sizes):
    from f5_worker.text.tokens import tokenize
    from f5_worker.tts.chunking import SHORT_TEXT_BYTES

    text = " ".join(words)
    tokens = [(t.char_start, t.char_end) for t in tokenize(text)]
    pieces = cut(default_ref, text, sizes)
    starts, ends = {s for s, _ in tokens}, {e for _, e in tokens}
    assert all(s in starts and e in ends for s, e in pieces)
    assert [sum(s <= a and b <= e for s, e in pieces) for a, b in tokens] == [1] * len(tokens)  # in exactly one
    assert pieces[0][0] == tokens[0][0] and pieces[-1][1] == tokens[-1][1]
    assert all(a[1] <= b[0] for a, b in zip(pieces, pieces[1:]))
    per_second = len(default_ref.text.encode()) / default_ref.duration
    for (s, e), asked in zip(pieces[1:], sizes):
        size = len(text[s:e].encode())
        one_word = not any(s < a < e for a, _ in tokens)
        assert one_word or size <= per_second * max(min(asked, WAV_PIECE_S), SHORT_TEXT_BYTES / per_second) + 1


def fewest_pieces(text: str, limit: int) -> int:
    """The fewest pieces of at most ``limit`` bytes a text cut between words can make (packed greedily)."""
    count, current = 1, ""
    for word in text.split():
        joined = f"{current} {word}" if current else word
        if len(joined.encode()) > limit:
            count, joined = count + 1, word
        current = joined
    return count


def test_full_pieces_share_the_rest_of_the_text_evenly_in_as_few_pieces_as_it_needs(default_ref):
    """Each piece pays for the reference prompt: a clause mark is taken where it adds no piece, and a last
    piece of a few words would pay for the prompt alone, after a long one."""
    from f5_worker.tts.chunking import max_chunk_chars

    text = " ".join(["word"] * 400)
    pieces = cut(default_ref, text, iter(lambda: 60.0, None))[1:]
    sizes = [e - s for s, e in pieces]
    per_second = len(default_ref.text) / default_ref.duration
    limit = min(max_chunk_chars(default_ref, 1.0), int(per_second * WAV_PIECE_S))
    assert len(sizes) == fewest_pieces(text[pieces[0][0]:], limit) and max(sizes) <= limit
    assert max(sizes) - min(sizes) <= 10, sizes  # within two words of each other
    clauses = " ".join(["A clause of some words, and then another one; then it ends."] * 12)
    pieces = cut(default_ref, clauses, iter(lambda: 60.0, None))[1:]
    assert len(pieces) == fewest_pieces(clauses[pieces[0][0]:], limit)
    assert all(clauses[e - 1] in ",;." for _, e in pieces)


LONG_TOKENS = ["9081726354" * 7, "-".join(["427"] * 15), "qwertyuiop" * 30, "%" * 40, "555-123-4567-" * 6,
               "https://example.com/" + "path/" * 25, "$" + "9" * 30, "ÄÖÜß" * 60, "a-b-c-" * 50, "+1 555-123-4567"]


@settings(max_examples=80, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "word,", "1990", "$5", "3.5%", "x" * 30, "日本語。", *LONG_TOKENS]),
                      min_size=1, max_size=12),
       limit=st.integers(20, 300))
def test_a_token_said_longer_than_a_piece_is_cut_into_parts_that_each_fit_one(words, limit):
    """A token is one unit to the piece cutter, so one said longer than an item holds (60 digits, a 1,500-letter
    word, 200 digit groups) was one item of several MB. Cut, its parts follow one another in the written and
    the spoken text alike, each said in at most ``limit`` bytes, and each part's reading is its own."""
    from f5_worker.text.normalize import normalize
    from f5_worker.text.tokens import tokenize
    from f5_worker.tts.chunking import cut_long_readings

    text = " ".join(words)
    said = normalize(text, "en")
    tokens = said.uncut_spans([(t.char_start, t.char_end) for t in tokenize(text)])
    cut, parts = cut_long_readings(said, tokens, limit)
    assert (cut.written, cut.spoken) == (said.written, said.spoken)
    rest = iter(parts)
    for a, b in tokens:
        mine = [next(rest)]
        while mine[-1][1] < b:
            mine.append(next(rest))
        assert mine[0][0] == a and mine[-1][1] == b and all(s < e for s, e in mine)
        assert [s for s, _ in mine[1:]] == [e for _, e in mine[:-1]]  # one after another, nothing left out
        spoken = [cut.within(s, e).spoken for s, e in mine]  # no reading straddles a cut
        whole = said.spoken[said.to_spoken(a):said.to_spoken(b)]
        assert "".join(spoken) == whole
        if len(whole.strip().encode()) <= limit:
            assert mine == [(a, b)]  # a token that fits is left whole
        assert all(len(part.strip().encode()) <= limit for part in spoken), (spoken, limit)
    assert next(rest, None) is None


@given(ms=st.integers(1, 600_000), max_seconds=st.floats(0.5, 60.0))
def test_a_pause_longer_than_an_item_holds_is_shared_evenly_among_as_few_items_as_hold_it(ms, max_seconds):
    """Adjacent pauses add up ("[pause:10s][pause:10s]" is 20 s), and 20 s of wav silence was one 1.3 MB item."""
    from f5_worker.tts.chunking import pause_lengths_ms

    lengths = pause_lengths_ms(ms, max_seconds)
    assert sum(lengths) == ms and all(0 < n <= max_seconds * 1000 for n in lengths)
    assert max(lengths) - min(lengths) <= 1 and len(lengths) == -(-ms // int(max_seconds * 1000))


def test_a_token_that_cannot_be_cut_within_an_item_is_refused_before_any_audio(default_ref):
    """A reading can be cut no finer than its written letters and digits: "10km" is four, said as "ten
    kilometers". Where an item holds less (here 0.2 s, as a reference transcript far too short for its audio
    could make it), the job is refused before the first item, not sent an item RunPod drops."""
    from f5_worker.errors import JobError
    from f5_worker.synthesis.script import ScriptPart, VoiceSource
    from f5_worker.synthesis.streaming import stream_steps
    from f5_worker.tts.chunking import StreamPacer

    part = ScriptPart("Take 10km now.", 7, VoiceSource(), 0, 1.0, ref=default_ref)
    with pytest.raises(JobError) as refused:
        stream_steps([part], "en", True, StreamPacer(max_seconds=0.2))
    assert str(refused.value).startswith("text: '10km' at character 12 is said longer than one streamed item holds")
    pieces = list(stream_steps([part], "en", False, StreamPacer(max_seconds=0.2)))  # said as written: cut
    assert "".join(p.said.spoken for p in pieces) == "Take10kmnow." and all(len(p.said.spoken) <= 2 for p in pieces)


def test_a_streamed_item_stays_under_runpods_1_mb_in_every_format():
    import json

    from f5_worker import audio
    from f5_worker.limits import OUTPUT_FORMATS
    from f5_worker.tts.chunking import max_piece_seconds

    assert 12 < max_piece_seconds(audio.BYTES_PER_SAMPLE["wav"], 24000) < 14
    for fmt in OUTPUT_FORMATS:
        seconds = max_piece_seconds(audio.BYTES_PER_SAMPLE[fmt], 24000)
        wave = (np.random.default_rng(0).standard_normal(int(seconds * 24000)) * 0.3).astype(np.float32)
        chars = [{"char": "x", "start": 123.456, "end": 123.567, "char_start": 12345, "char_end": 12346,
                  "score": 0.123, "voice": "someone", "segment": 12}] * int(seconds * 18)
        item = {"audio_base64": base64.b64encode(audio.encode_audio(wave, 24000, fmt)).decode(), "chars": chars}
        assert len(json.dumps(item)) < 1_000_000, fmt


def test_the_pacer_sizes_a_piece_to_be_ready_before_the_audio_ahead_has_played():
    from f5_worker.tts.chunking import PACE_MARGIN, StreamPacer

    pacer = StreamPacer(max_seconds=WAV_PIECE_S)
    pacer.made(1.0)
    pacer.sampled(wall_s=1.2, seconds=1.0, ref_seconds=5.0)  # 0.2 s per second of frames
    pacer.handed_out(10.0)
    pacer.made(3.0, piece=False)  # a pause counts as audio ahead
    # at 10.5 s, 3.5 s are left to play: a piece of x s takes 0.2 * (5 + x) s to sample
    assert pacer.next_seconds(10.5, 5.0) == pytest.approx((3.5 * PACE_MARGIN - 1.0) / 0.2)
    pacer.aligned(wall_s=0.5, seconds=1.0)  # and 0.5 x s to align
    assert pacer.next_seconds(10.5, 5.0) == pytest.approx((3.5 * PACE_MARGIN - 1.0) / 0.7)
    # what fits shrinks as the audio ahead plays; at `edge` it is the 1.0 s of the piece before. Just before,
    # that is the piece; just after, the stream is falling behind: full pieces, the fewest
    edge = 10.0 + 4.0 - (1.0 + 0.7 * 1.0) / PACE_MARGIN  # handed out at 10 s; 4 s made (a piece and a pause)
    assert pacer.next_seconds(edge - 0.07, 5.0) == pytest.approx(1.0 + 0.07 * PACE_MARGIN / 0.7)
    assert pacer.next_seconds(edge + 0.07, 5.0) == WAV_PIECE_S
    pacer.sampled(wall_s=0.01, seconds=1.0, ref_seconds=5.0)  # a fast sampler: full pieces at once
    pacer.aligned(wall_s=0.01, seconds=1.0)
    assert pacer.next_seconds(10.5, 5.0) == WAV_PIECE_S


def test_the_next_piece_is_sampled_while_the_one_before_is_aligned(streaming_worker):
    """The sampler does not wait for the alignment: piece n + 1 is queued before piece n is aligned."""
    events = []
    aligner = streaming_worker.aligner
    align = aligner.align

    def recorded_align(*args, **kwargs):
        events.append("align")
        return align(*args, **kwargs)

    streaming_worker.engine.on_queued = lambda request: events.append("queued")
    aligner.align = recorded_align
    try:
        items = streaming_worker.handle({"text": STREAM_TEXT + " " + STREAM_TEXT, "stream": True, "nfe_step": 4,
                                         "seed": 4, "max_retries": 0})
    finally:
        streaming_worker.engine.on_queued = None
        del aligner.align
    pieces = len(items) - 1
    assert pieces >= 3 and events.count("align") == pieces
    # queued 1, queued 2, align 1, queued 3, align 2, ..., align n
    assert events == ["queued", "queued"] + ["align", "queued"] * (pieces - 2) + ["align", "align"]


def test_the_pacer_measures_a_piece_sampled_ahead_until_its_audio_exists_not_until_it_is_read(
        streaming_worker, monkeypatch):
    """A piece queued ahead is read once the piece before has been aligned; the time it then waited for its
    reader is not sampling time (counted as such, it made a slow aligner look like a slow sampler).

    The sampler's clock is the real one, which the aligner moves an hour ahead once the piece queued ahead
    has its audio: so the two are told apart by the clock itself, not by how fast this machine samples."""
    import time

    from f5_worker.tts import sampler
    from f5_worker.tts.chunking import StreamPacer

    align_s = 3600.0

    class Clock:
        """The time module, with perf_counter moved ``ahead`` of the real one."""

        ahead = 0.0

        def perf_counter(self) -> float:
            return time.perf_counter() + self.ahead

        def __getattr__(self, name):
            return getattr(time, name)

    clock = Clock()
    monkeypatch.setattr(sampler, "time", clock)
    pendings, readings = [], []  # each piece's PendingSynthesis; (measured sampling time, when read)
    submit = streaming_worker.engine.submit
    monkeypatch.setattr(streaming_worker.engine, "submit", lambda *a: pendings.append(submit(*a)) or pendings[-1])
    aligner = streaming_worker.aligner
    align = aligner.align

    def slow_align(*args, **kwargs):
        give_up = time.monotonic() + 300  # a hang guard
        while pendings[-1].sampled_at is None:  # the piece queued ahead, if any, has its audio...
            assert time.monotonic() < give_up, "the piece queued ahead was never sampled"
            time.sleep(0.005)
        clock.ahead += align_s  # ...and then this alignment takes an hour
        return align(*args, **kwargs)

    sampled = StreamPacer.sampled
    monkeypatch.setattr(StreamPacer, "sampled", lambda self, wall_s, *a: (
        readings.append((wall_s, clock.perf_counter())), sampled(self, wall_s, *a))[1])
    aligner.align = slow_align
    try:
        items = streaming_worker.handle({"text": STREAM_TEXT, "stream": True, "nfe_step": 4, "seed": 4,
                                         "max_retries": 0})
    finally:
        del aligner.align
    check_stream(items, STREAM_TEXT)
    assert len(readings) == len(pendings) == len(items) - 1 >= 2
    for pending, (measured, read_at) in list(zip(pendings, readings))[1:]:
        waited = read_at - pending.submitted  # from its queueing to its reading: the hour's alignment in it
        assert waited >= align_s and measured <= waited - align_s, (measured, waited)


# -- the items, in the worker's own process -----------------------------------------------------------


@pytest.fixture
def streaming_worker(worker, monkeypatch):
    monkeypatch.setattr(worker, "settings", dataclasses.replace(worker.settings, streaming=True))
    return worker


def test_a_streamed_job_where_nothing_reads_a_stream_returns_its_items_as_a_list(streaming_worker):
    """runpod's test_input.json mode calls the plain handler: it gets the items as /runsync aggregates them."""
    items = streaming_worker.handle({"text": STREAM_TEXT, "stream": True, "nfe_step": 4, "seed": 4,
                                     "max_retries": 0, "char_timings": True, "output_format": "flac"})
    check_stream(items, STREAM_TEXT, "flac")
    assert items[-1]["captions"]["srt"].startswith("1\n") and set(items[-1]["quality"]) == \
           {"alignment_score", "retries", "flagged_words"}


def test_a_reading_across_a_piece_cut_is_said_as_the_unstreamed_job_says_it(streaming_worker):
    """"$5 million" is one reading: cut after "$5" it would be said "five dollars | million"."""
    from f5_worker.text.normalize import normalize

    text = "So we raised $5 million in March 15, 2024, and then some more of it."
    items = streaming_worker.handle({"text": text, "stream": True, "nfe_step": 4, "seed": 4, "max_retries": 0})
    assert isinstance(items, list), items
    check_stream(items, text)
    assert items[-1]["normalized_text"] == normalize(text, "en").spoken
    assert not any(p["text_end"] == text.index("$5") + 2 for p in items[:-1])


def test_a_piece_is_sized_by_its_text_as_said_so_no_item_is_over_1_mb(streaming_worker):
    """"123456789" is 9 bytes written and about 90 said: four such numbers, cut as the first piece's few words
    would be, are 30 s of wav (a 2 MB item, that RunPod refuses)."""
    import json

    text = "123456789 987654321 123456789 987654321, and that was all of them."
    items = streaming_worker.handle({"text": text, "stream": True, "nfe_step": 4, "seed": 4, "max_retries": 0})
    assert isinstance(items, list), items
    check_stream(items, text)
    assert all(len(json.dumps(item)) < 1_000_000 for item in items), [len(json.dumps(i)) for i in items]
    assert all(piece["duration"] <= WAV_PIECE_S + 1 for piece in items[:-1])


def test_a_piece_whose_every_character_is_timed_stays_under_1_mb_however_fast_its_voice_speaks(streaming_worker):
    """A piece's timings grow with its text, not its seconds: a clip whose transcript is dense (54 bytes a
    second, as a fast speaker's), spoken at speed 3 with every character timed, says 160 characters a
    second, each an entry of about 110 bytes. Sized for 4 kB of timings a second, such pieces of 12 s of
    wav were items of 1.08 MB, which RunPod drops."""
    import io
    import json

    import soundfile as sf

    wave, rate = sf.read(DEFAULT_VOICE_WAV)
    clip = io.BytesIO()
    sf.write(clip, wave[:int(rate * 2.6)], rate, format="WAV")
    ref_text = ("Some call me nature, others call me mother nature. " * 3)[:150]
    text = ("The quick brown fox jumps over the lazy dog and keeps running far away. " * 70)[:4400]
    items = streaming_worker.handle({
        "segments": [{"text": text, "ref_audio_base64": base64.b64encode(clip.getvalue()).decode(),
                      "ref_text": ref_text}],
        "speed": 3, "char_timings": True, "stream": True, "nfe_step": 4, "seed": 1, "max_retries": 0})
    assert isinstance(items, list), items
    *pieces, done = items
    assert done["done"] and "".join(c["char"] for p in pieces for c in p["chars"]) == "".join(text.split())
    sizes = [len(json.dumps({"output": item}).encode()) for item in items]  # as runpod-python posts it
    assert max(sizes) <= 1_000_000, sizes
    assert max(len(json.dumps(p["chars"])) for p in pieces) > 100_000  # timings that fill a good part of an item


def test_words_that_say_nothing_after_a_full_piece_stay_under_1_mb(streaming_worker, monkeypatch):
    """Emoji at the end of a part went, all of them, with the piece before: a full piece (13 s of wav) and the
    words and characters of 1,485 emoji made an item of 1.18 MB, which RunPod drops. Their pieces are now cut
    with them counted. The pieces are asked for at full size, as a stream that samples fast enough asks."""
    import json

    from f5_worker.tts.chunking import StreamPacer

    monkeypatch.setattr(StreamPacer, "next_seconds", lambda pacer, now, ref_seconds: pacer.max_seconds)
    text = ("The quick brown fox jumps over the lazy dog and keeps running far away. " * 3)[:155] + " 😀" * 1485
    items = streaming_worker.handle({"text": text, "char_timings": True, "stream": True, "nfe_step": 4, "seed": 1,
                                     "max_retries": 0, "caption_formats": []})
    assert isinstance(items, list), items
    check_stream(items, text)  # every word and character of the text timed, once
    pieces = items[:-1]
    sizes = [len(json.dumps({"output": item}).encode()) for item in items]  # as runpod-python posts it
    assert max(sizes) <= 1_000_000, sizes
    assert max(p["duration"] for p in pieces) > WAV_PIECE_S - 1  # a full piece among them


@pytest.mark.parametrize("text", [
    "👍 👍 👍 👍 👍 👍 👍 👍 👍 hello there my friend, how are you today? Fine, thanks.",
    "&nbsp; &nbsp; &nbsp; &nbsp;, hello there. And more words to say, so that it takes two pieces. 😀 😀 😀",
])
def test_no_piece_is_made_of_words_that_say_nothing(streaming_worker, text):
    """A piece was cut by its written words: four emoji, or four "&nbsp;", were a first piece of 16 bytes written
    and nothing said, and sampling nothing failed the job with an internal error. A piece holds something said;
    words that say nothing go with the words beside them."""
    from f5_worker.text.normalize import says_something

    items = streaming_worker.handle({"text": text, "stream": True, "nfe_step": 4, "seed": 4, "max_retries": 0})
    assert isinstance(items, list), items
    check_stream(items, text)
    assert all(says_something(text[p["text_start"]:p["text_end"]]) for p in items[:-1])


def test_runpod_local_test_mode_is_told_from_the_arguments_and_the_job_queue(monkeypatch):
    from f5_worker.config import runpod_local_test_mode

    monkeypatch.delenv("RUNPOD_WEBHOOK_GET_JOB", raising=False)
    assert runpod_local_test_mode(["h.py"]) and not runpod_local_test_mode(["h.py", "--rp_serve_api"])
    monkeypatch.setenv("RUNPOD_WEBHOOK_GET_JOB", "http://x/job-take/$ID")
    assert not runpod_local_test_mode(["h.py"]) and runpod_local_test_mode(["h.py", "--test_input", "{}"])


# -- runpod-python's worker loop, streaming ------------------------------------------------------------


@contextlib.contextmanager
def streaming_handler_process(api: RunPodJobApi, worker_env: dict, folder: Path, **settings: str):
    """runpod_handler.py with STREAMING=1 under runpod-python's JobScaler, taking jobs from ``api``; yields
    a reader of its log. Stopped (SIGTERM, then killed past SERVER_STOP_S) when the block ends."""
    env = {**worker_env, **api.worker_env(), "STREAMING": "1", "ALIGN_PROCESSES": "0", **settings}
    with running([sys.executable, str(REPO_ROOT / "runpod_handler.py")], env, folder, "worker.log") as (_, log):
        yield log.read_text


@pytest.fixture(scope="module")
def streaming_platform(worker_env, tmp_path_factory):
    """A worker with STREAMING=1 under runpod-python's JobScaler, against the stand-in platform."""
    with RunPodJobApi() as api, streaming_handler_process(api, worker_env, tmp_path_factory.mktemp("stream-worker")) as read:
        yield api, read


@pytest.mark.slow
def test_the_worker_loop_posts_each_item_to_stream_and_the_list_as_the_result(streaming_platform):
    api, _ = streaming_platform
    job = api.submit({"text": STREAM_TEXT, "stream": True, "nfe_step": 4, "seed": 1, "max_retries": 0})
    result = api.result(job)
    check_stream(api.streamed[job], STREAM_TEXT)
    assert result["output"] == api.streamed[job]  # return_aggregate_stream: /runsync and /status get the list

    plain = api.submit({"text": "Not streamed.", "nfe_step": 4, "seed": 1, "max_retries": 0})
    [out] = api.result(plain)["output"]  # every result of a streaming worker is a list: here of one
    assert {"audio_base64", "duration", "words", "captions", "quality", "timing", "delivery"} <= out.keys()

    bad = api.submit({"text": "hi", "speed": 50})
    assert api.result(bad)["error"] == "speed: must be less than or equal to 3"  # still RunPod's FAILED form


@pytest.mark.slow
def test_a_cancel_mid_stream_stops_the_work(streaming_platform):
    api, read_log = streaming_platform
    text = " ".join(["This sentence runs on for a good while, and then it stops."] * 8)
    job = api.submit({"text": text, "stream": True, "nfe_step": 64, "seed": 2, "max_retries": 0})
    api.wait(lambda: api.streamed.get(job), 120, "the first streamed item")
    api.stop(job)  # what RunPod sends on /cancel
    wait_for_log(read_log, rf"job {job}: stopped: ")
    assert f"job {job}: stopped by RunPod" in read_log()
    after = api.submit({"text": "And the next one.", "nfe_step": 4, "max_retries": 0})
    assert "audio_base64" in api.result(after)["output"][0]
    sent = api.streamed[job]
    assert not any(i.get("done") for i in sent) and sent[-1]["text_end"] < len(text)  # the rest never made
    assert job not in api.results  # a stopped job posts no result


LONG_STREAM_TEXT = " ".join([STREAM_TEXT] * 2)  # about 25 s: 1.7 MB of wav items


@pytest.fixture(scope="module")
def long_stream(worker):
    """A stream of several pieces, as the worker's items (made once: each test cuts down its own copy)."""
    from f5_worker.worker import Worker

    settings = dataclasses.replace(worker.settings, streaming=True, aligner="estimate")
    items = Worker(settings, worker.models).handle({"text": LONG_STREAM_TEXT, "stream": True, "nfe_step": 4,
                                                    "seed": 6, "max_retries": 0})
    assert isinstance(items, list) and len(items) >= 4, items
    return items


@pytest.mark.parametrize("budget", [100_000, 400_000, 900_000, 1_400_000, 10_000_000])
def test_the_result_runpod_keeps_of_a_stream_stays_under_max_inline_bytes(long_stream, budget, caplog):
    """runpod-python keeps every item a stream yields (the same dict) and posts the list as the job's result,
    which RunPod refuses over 10 MB (/run): long streams gave 2.4-17 MB, and never completed. Once posted, an
    item is cut down to what the result keeps: the first pieces' audio, then pieces without theirs, marked."""
    import copy
    import json

    from f5_worker.delivery import KeptStream, inline_size

    stream, posted = copy.deepcopy(long_stream), []
    kept = KeptStream(budget, "job-kept")
    for item in stream:  # as runpod_handler.stream_handler and runpod's worker loop take turns
        if item.get("done"):
            kept.closing(item)
        posted.append(json.loads(json.dumps(item)))
        kept.sent(item)
    *pieces, done = posted
    assert [{k: v for k, v in p.items()} for p in pieces] == long_stream[:-1]  # /stream had every piece whole
    whole = inline_size(long_stream)
    if whole <= budget:
        assert stream == long_stream and "warnings" not in done or done["warnings"] == []
        return
    no_audio = [p for p in stream[:-1] if "audio_base64" not in p]
    if inline_size([{k: v for k, v in p.items() if k != "audio_base64"} for p in stream]) > budget:
        assert len(no_audio) == len(pieces) and "over MAX_INLINE_BYTES" in caplog.text  # said, nothing more to do
        return
    assert inline_size(stream) <= budget and no_audio
    with_audio = ["audio_base64" in p for p in stream[:-1]]
    assert with_audio == sorted(with_audio, reverse=True)  # the kept audio is the first pieces', one whole
    for mine, sent in zip(stream[:-1], pieces):
        assert mine == sent or mine == {**{k: v for k, v in sent.items() if k != "audio_base64"}, "audio_omitted": True}
    assert stream[-1] == done and f"pieces {no_audio[0]['seq']}-{no_audio[-1]['seq']} without their audio" in \
        done["warnings"][-1]


@pytest.fixture(scope="module")
def small_result_platform(worker_env, tmp_path_factory):
    """A streaming worker that keeps its results under 1 MB (MAX_INLINE_BYTES), against a platform that refuses
    a result over 1.2 MB: RunPod's 10 MB and the default 9 MiB, scaled down to a stream of a few pieces."""
    with RunPodJobApi(result_limit=1_200_000) as api, \
            streaming_handler_process(api, worker_env, tmp_path_factory.mktemp("kept-worker"), MAX_INLINE_BYTES="1000000"):
        yield api


@pytest.mark.slow
def test_a_stream_over_the_result_limit_completes_and_every_item_reaches_stream_whole(small_result_platform):
    """Before, the list of a stream's items went whole to job-done, which refused it: a client had read every
    item on /stream, and the job never completed (nor did /status or /runsync give anything)."""
    import json

    api = small_result_platform
    job = api.submit({"text": LONG_STREAM_TEXT, "stream": True, "nfe_step": 4, "seed": 7, "max_retries": 0})
    api.wait(lambda: job in api.results or any(r[1] == job for r in api.refused), 180, "the stream's result")
    assert not api.refused and "error" not in api.results[job], (api.refused, api.results.get(job, {}).get("error"))
    streamed, kept = api.streamed[job], api.results[job]["output"]
    check_stream(streamed, LONG_STREAM_TEXT)  # every piece whole on /stream
    assert len(json.dumps(streamed)) > 1_200_000 >= 1_000_000 >= len(json.dumps(kept, ensure_ascii=False))
    assert [i["seq"] for i in kept] == [i["seq"] for i in streamed] and kept[-1] == streamed[-1]
    assert "audio_base64" in kept[0] and kept[-2]["audio_omitted"] is True and "audio_base64" not in kept[-2]
    assert kept[-2]["words"] == streamed[-2]["words"]  # the timings are all kept


def many_voices_captions() -> dict:
    """The last item of a stream of 2,500 words that switch speaker at each word, in every caption format:
    1.2 MB of captions, more than one streamed item holds."""
    from f5_worker.schema import SynthesizeRequest
    from f5_worker.timed_text import Alignment, TimedSpan
    from f5_worker.timings import timing_fields

    words = [TimedSpan("a", i * 0.2, i * 0.2 + 0.15, 0.9, 2 * i, 2 * i + 1, voice=f"speaker{i % 2}", segment=i % 50)
             for i in range(2500)]
    options = SynthesizeRequest(text="a", word_timings=False, caption_formats=["srt", "vtt", "ass", "csv", "json"])
    fields = timing_fields(Alignment(words=words, chars=[], score=0.9, backend="sphinx", estimated=False), options,
                           500.0)
    return {"seq": 40, "done": True, "pieces": 40, "duration": 500.0, **fields, "warnings": []}


@pytest.mark.parametrize("bucket", [False, True])
def test_a_last_item_over_1_mb_links_or_leaves_out_its_largest_captions(bucket, request, tmp_path):
    """The last item carries the captions of the whole text: for a long text in every format, or spoken by
    many voices, several MB, and an item over 1 MB never reaches the client, nor does anything only the whole
    gives (quality, timing). Its largest caption files go to the bucket as links, or without one are left out,
    said in its warnings; the others stay."""
    import json

    import requests

    from f5_worker.config import StorageSettings
    from f5_worker.delivery import KEPT_WARNING_BYTES, fit_last_item
    from f5_worker.storage.stores import Stores

    if bucket:
        request.getfixturevalue("bucket_env")
    else:
        request.getfixturevalue("no_bucket_env")
    stores = Stores(StorageSettings.from_env(network_volume_path=tmp_path / "absent"))
    item = many_voices_captions()
    captions = dict(item["captions"])
    assert len(json.dumps(item)) > 1_000_000
    fit_last_item(item, max_bytes=1_000_000, stores=stores, job_id="many-voices", upload=True)
    assert len(json.dumps({"output": item}, ensure_ascii=False)) <= 1_000_000 - KEPT_WARNING_BYTES
    left = set(captions) - set(item.get("captions", {}))
    assert "json" in left and "csv" not in left and all(item["captions"][f] == captions[f] for f in item["captions"])
    if bucket:
        assert set(item["caption_urls"]) == left and not item["warnings"]
        assert all(requests.get(item["caption_urls"][f], timeout=30).text == captions[f] for f in left)
    else:
        named = item["warnings"][-1].partition(" left out")[0].removeprefix("captions ")
        assert "caption_urls" not in item and set(named.split(", ")) == left


def test_with_a_bucket_the_last_item_links_the_whole_speech(worker, tiny_settings, tmp_path, bucket_env):
    import io

    import requests
    import soundfile as sf

    from f5_worker.worker import Worker

    settings = dataclasses.replace(tiny_settings, network_volume_path=tmp_path / "volume", streaming=True)
    items = Worker(settings, worker.models).handle(
        {"text": "Hello there, my friend. And a few more words.", "stream": True, "nfe_step": 4, "seed": 2,
         "max_retries": 0}, job_id="stream-bucket")
    check_stream(items, "Hello there, my friend. And a few more words.")
    done = items[-1]
    assert done["audio_url"] == done["files"]["speech.wav"]["url"] and done["expires_in"] > 0
    whole, sr = sf.read(io.BytesIO(requests.get(done["audio_url"], timeout=30).content), dtype="float32")
    pieces = np.concatenate([decode_b64_audio(p["audio_base64"])[0] for p in items[:-1]])
    assert sr == 24000 and np.array_equal(whole, pieces)  # the pieces, played end to end, are the whole file
