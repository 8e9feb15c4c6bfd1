"""A target ``duration`` (synthesis/duration.py): the length spread over every chunk of every run in proportion
to its text, within one frame of the target, and refused where the speed it implies is out of range."""

import re

import pytest

from conftest import decode_b64_audio
from f5_worker.schema import parse_job
from f5_worker.synthesis.duration import fit_duration
from f5_worker.synthesis.runs import SampledText

FAST = {"nfe_step": 4, "max_retries": 0}


def run(worker, **fields):
    return worker.handle({**FAST, **fields}, job_id="test")


def test_duration_sets_the_total_length_within_one_frame_and_splits_it_in_proportion_to_the_text(worker):
    ref = worker.synthesis.reference_for(parse_job({"text": "x"}))
    texts = ["A short line.", "A much longer line of text, which should get a larger share of the time."]
    runs = [SampledText((n,), (0,), t, ref, 1.0) for n, t in enumerate(texts)]
    fitted = fit_duration(runs, 24000, 6.0, sample_rate=24000, hop_length=256, cross_fade_s=0.15)
    shares = [sum(r.chunk_frames) for r in fitted]
    assert shares[1] / shares[0] == pytest.approx(len(texts[1]) / len(texts[0]), rel=0.05)
    assert fitted[0].speed == fitted[1].speed != 1.0
    assert [(r.speed, r.chunk_frames) for r in runs] == [(1.0, None)] * 2  # new runs: the ones given stay as they were

    hop = worker.models.hop_length
    for target in (5.0, 8.5):
        out = run(worker, text="Dubbing needs a target length. [pause:0.5s] This one has two parts.",
                  duration=target, seed=1)
        assert "error" not in out, out
        wave, rate = decode_b64_audio(out["audio_base64"])
        assert abs(len(wave) - target * rate) <= hop, (len(wave), target * rate)
    long_text = ("This sentence is here to make a long text, so that it is cut into several chunks. " * 8).strip()
    out = run(worker, text=long_text + " [pause:1s] And a short part.", duration=40, seed=2, word_timings=False,
              caption_formats=[])
    wave, rate = decode_b64_audio(out["audio_base64"])
    assert out["chunks"] >= 3 and abs(len(wave) - 40 * rate) <= hop  # cross-fades between chunks counted
    out = run(worker, text="Far too many words for so little time, surely.", duration=0.2)
    assert re.fullmatch(r"duration: 0\.2 s would need speed [\d.]+; the text needs between [\d.]+ and [\d.]+ s",
                        out["error"]), out
    assert run(worker, text="Hi there.", duration=3, speed=1.2)["error"].startswith("duration: sets the speed")
