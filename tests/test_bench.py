"""scripts/bench/bench.py: a short real run on the tiny model, side by side with upstream, and its helpers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT

BENCH = REPO_ROOT / "scripts" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("f5_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=2.0, max_value=60.0))
def test_bench_text_is_about_the_asked_length(seconds):
    import soundfile as sf

    text = bench.bench_text(seconds)
    ref_seconds = sf.info(str(bench.ref_wav_path())).duration
    estimated = len(text.encode()) * ref_seconds / len((bench.REF_TEXT + " ").encode())
    assert abs(estimated - seconds) < 1.0
    assert text[-1] in ".!?"


@given(st.floats(1.0, 1e5), st.floats(0.0, 1e3), st.floats(0.0, 1e5), st.floats(0.0, 1e5), st.floats(0.1, 100.0))
def test_overhead_is_a_share_of_the_job(wall_ms, json_ms, synthesis_ms, vocoding_ms, duration):
    record = {"wall_ms": wall_ms, "json_ms": json_ms, "duration": duration,
              "timing": {"synthesis_ms": synthesis_ms, "vocoding_ms": vocoding_ms}}
    share, per_audio = bench.overhead(record)
    assert 0.0 <= share <= 1.0
    outside_s = max(0.0, wall_ms + json_ms - synthesis_ms - vocoding_ms) / 1000
    assert per_audio == pytest.approx(outside_s / duration)


@pytest.mark.slow
def test_bench_runs_both_sides_and_writes_the_figures(tiny_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--models-dir", str(tiny_model_dir), "--jobs", "1", "--upstream-jobs", "1", "--concurrency", "1,2",
         "--nfe", "4", "--text-seconds", "3", "--cold-starts", "1", "--json", str(out),
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
    for stage in ("reference_ms", "synthesis_ms", "vocoding_ms", "encoding_ms", "total_ms"):
        assert 0 <= r["latency_ms"][stage]["p50"] <= r["latency_ms"][stage]["p95"], stage
    # the stages fit inside the job
    assert r["latency_ms"]["synthesis_ms"]["p50"] < r["latency_ms"]["wall_ms"]["p95"]
    # same work on both sides: the utterances are about as long as asked, and as each other
    assert 1.5 < r["audio_seconds"] < 5 and 1.5 < r["upstream_audio_seconds"] < 5
    assert r["rtf"] == pytest.approx(r["latency_ms"]["wall_ms"]["p50"] / 1000 / r["audio_seconds"], rel=0.5)
    assert r["model"] == "tiny" and r["nfe"] == 4 and r["device"] == "cpu"
    assert r["machine"]["cpu"] and r["machine"]["usable_cores"] >= 1
    assert "cold start" in proc.stdout and "RTF" in proc.stdout


def test_gpu_profile_script_runs_on_cpu(tmp_path, tiny_model_dir):
    """scripts/bench/gpu_profile.py is for a GPU session; its smoke run keeps it from rotting meanwhile."""
    spec = importlib.util.spec_from_file_location("gpu_profile", REPO_ROOT / "scripts" / "gpu_profile.py")
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
