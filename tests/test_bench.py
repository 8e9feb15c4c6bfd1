"""scripts/bench/bench.py: a short real run on the tiny model, side by side with upstream, and its helpers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT

BENCH = REPO_ROOT / "scripts" / "bench" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("f5_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _bytes_per_second() -> float:
    import soundfile as sf

    return len((bench.REF_TEXT + " ").encode()) / sf.info(str(bench.ref_wav_path())).duration


@settings(max_examples=30, deadline=None)
@example(25.0)  # once failed a 1 s tolerance: the cut falls before "consequences." (13 bytes and a space, 1.46 s)
@example(25.25)  # the largest shortfall between 2 and 60 s, 1.30 s: the same word, a quarter second later
@example(2.0)
@example(60.0)
@given(st.floats(min_value=2.0, max_value=60.0))
def test_bench_text_is_about_the_asked_length(seconds):
    """F5-TTS gives a text the reference's bytes per second, so the length is read in bytes.

    The text is whole words, so it can miss by up to one word: the tolerance is the passage's longest word and
    its space short (half a byte more for rounding the target to whole bytes), and the closing full stop long.
    """
    text = bench.bench_text(seconds)
    bytes_per_second = _bytes_per_second()
    estimated = len(text.encode()) / bytes_per_second

    # whole words of the passage from its start, in order; only the last one's punctuation may become the stop
    words = text.split()
    passage = bench.PASSAGE.split() * (2 + len(words) // len(bench.PASSAGE.split()))
    assert words[:-1] == passage[:len(words) - 1]
    assert words[-1].rstrip(".") == passage[len(words) - 1].rstrip(".,;!?")
    assert text[-1] in ".!?"

    longest_word = max(len(w.encode()) for w in bench.PASSAGE.split())
    short_by = (longest_word + 1 + 0.5) / bytes_per_second
    long_by = (1 + 0.5) / bytes_per_second
    assert seconds - short_by < estimated <= seconds + long_by, (estimated, seconds)


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=2.0, max_value=59.0), st.floats(min_value=0.0, max_value=1.0))
def test_bench_text_grows_with_the_asked_length(seconds, more):
    shorter, longer = bench.bench_text(seconds), bench.bench_text(seconds + more)
    assert longer.startswith(shorter.rstrip(".,;!?")) and len(longer) >= len(shorter)


def _record(wall_ms, json_ms=0.0, duration=1.0, **timing):
    return {"wall_ms": wall_ms, "json_ms": json_ms, "duration": duration, "timing": timing}


@pytest.mark.parametrize(("record", "share", "per_audio_second"), [
    # 1 s job, 0.8 s of model compute: 0.2 s outside, over 2 s of audio
    (_record(1000.0, duration=2.0, synthesis_ms=600.0, vocoding_ms=200.0), 0.2, 0.1),
    # serialising the result is part of the job; re-sampling the model (retries) is compute
    (_record(900.0, json_ms=100.0, duration=0.5, synthesis_ms=500.0, retries_ms=250.0), 0.25, 0.5),
    # alignment, captions and the reference are work outside the model's forward passes
    (_record(1000.0, duration=3.0, synthesis_ms=400.0, alignment_ms=300.0, captions_ms=50.0, reference_ms=50.0),
     0.6, 0.2),
    # no stage timing at all: the whole job is overhead
    (_record(500.0), 1.0, 0.5),
    # compute timed longer than the job (separate clocks): no overhead, never a negative one
    (_record(100.0, synthesis_ms=150.0), 0.0, 0.0),
])
def test_overhead_examples(record, share, per_audio_second):
    assert bench.overhead(record) == (pytest.approx(share), pytest.approx(per_audio_second))


@given(st.floats(1.0, 1e5), st.floats(0.0, 1e3), st.floats(0.0, 1e5), st.floats(0.0, 1e5), st.floats(0.1, 100.0),
       st.floats(0.0, 1e5))
def test_overhead_is_a_share_of_the_job(wall_ms, json_ms, synthesis_ms, vocoding_ms, duration, more_ms):
    timing = {"synthesis_ms": synthesis_ms, "vocoding_ms": vocoding_ms}
    share, per_audio = bench.overhead(_record(wall_ms, json_ms, duration, **timing))
    assert 0.0 <= share <= 1.0 and per_audio >= 0.0
    # the time outside compute is part of the job's own time
    assert per_audio * duration <= (wall_ms + json_ms) / 1000 * (1 + 1e-9)
    if synthesis_ms + vocoding_ms >= wall_ms + json_ms:
        assert (share, per_audio) == (0.0, 0.0)

    # the same compute in a longer job leaves more outside it
    longer_share, longer_per_audio = bench.overhead(_record(wall_ms + more_ms, json_ms, duration, **timing))
    assert longer_share >= share - 1e-9 and longer_per_audio >= per_audio - 1e-9
    # the same job over more audio costs less per audio second
    _, spread = bench.overhead(_record(wall_ms, json_ms, duration * 2, **timing))
    assert spread <= per_audio


@pytest.mark.slow
def test_bench_runs_both_sides_and_writes_the_figures(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--models-dir", str(tiny_model_dir), "--jobs", "1", "--upstream-jobs", "1", "--concurrency", "1,2",
         "--nfe", "4", "--text-seconds", "3", "--cold-starts", "1", "--stream", "--http", "--json", str(out),
         "--log-dir", str(tmp_path / "logs")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())

    for key in ("rtf", "upstream_rtf", "overhead_fraction", "overhead_per_audio_second", "cold_start_s",
                "upstream_cold_start_s", "first_job_s", "upstream_first_job_s", "peak_rss_mb", "speedup_rtf",
                "cold_start_ratio"):
        assert isinstance(r[key], float) and r[key] > 0, key
    assert 0 < r["overhead_fraction"] < 1
    assert set(r["throughput"]) == {"1", "2"} and all(v > 0 for v in r["throughput"].values())
    assert r["upstream_throughput"] > 0 and r["paired_throughput"] > 0
    # each stage is timed inside the handler's total and the total inside the job's wall time, job by job; a bound
    # that holds for every job holds for each percentile too (timings are rounded to 0.01 ms)
    latency = r["latency_ms"]
    for q in ("p50", "p95"):
        for stage in ("reference_ms", "synthesis_ms", "vocoding_ms", "encoding_ms"):
            assert latency[stage][q] <= latency["total_ms"][q], (stage, q)
        assert latency["total_ms"][q] <= latency["wall_ms"][q] + 0.01, q
    assert latency["synthesis_ms"]["p50"] > 0 and latency["vocoding_ms"]["p50"] > 0  # the model ran, timed
    # same work on both sides: the utterances are about as long as asked, and as each other
    assert 1.5 < r["audio_seconds"] < 5 and 1.5 < r["upstream_audio_seconds"] < 5
    assert r["rtf"] == pytest.approx(r["latency_ms"]["wall_ms"]["p50"] / 1000 / r["audio_seconds"], rel=0.5)
    assert r["model"] == "tiny" and r["nfe"] == 4 and r["device"] == "cpu"
    assert r["machine"]["cpu"] and r["machine"]["usable_cores"] >= 1
    assert "cold start" in proc.stdout and "RTF" in proc.stdout
    # --stream: streamed jobs beside unstreamed ones at each level; the first audio comes before the stream ends
    assert set(r["stream"]) == {"1", "2"}
    for level in r["stream"].values():
        assert 0 < level["first_audio_s"] <= level["streamed_total_s"] and level["unstreamed_s"] > 0
        assert level["first_audio_ratio"] == pytest.approx(level["first_audio_s"] / level["unstreamed_s"])
        assert 0 <= level["stalled_s"] <= level["stalled_p95_s"] and level["stalled_s"] < level["streamed_total_s"]
    assert "first audio" in proc.stdout
    # --http: the same jobs streamed over the HTTP server and through the queue's handler, side by side
    assert set(r["http"]) == {"1", "2"}
    for level in r["http"].values():
        assert 0 < level["http_first_audio_s"] <= level["http_total_s"]
        assert 0 < level["queue_first_audio_s"] <= level["queue_total_s"]
        assert level["first_audio_ratio"] == pytest.approx(level["http_first_audio_s"] / level["queue_first_audio_s"])
    assert "streamed over HTTP" in proc.stdout


def test_gpu_profile_script_runs_on_cpu(tmp_path, tiny_model_dir):
    """scripts/bench/gpu_profile.py is for a GPU machine; its smoke run keeps it from rotting meanwhile."""
    spec = importlib.util.spec_from_file_location("gpu_profile", REPO_ROOT / "scripts" / "bench" / "gpu_profile.py")
    gpu_profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_profile)
    out = tmp_path / "profile.json"
    report = gpu_profile.main(["--device", "cpu", "--frames", "96", "--reps", "1", "--models-dir", str(tiny_model_dir),
                               "--json", str(out)])
    saved = json.loads(out.read_text())
    for key in ("step_eager_no_mask_ms", "step_eager_mask_ms", "attention_no_mask_ms", "attention_bool_mask_ms",
                "linear_q_ms", "position_conv_ms"):
        assert report[key] > 0 and saved[key] == report[key]
    assert "aten::" in saved["kernel_table"]
