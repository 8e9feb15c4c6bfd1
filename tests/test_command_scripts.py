"""Every command (under scripts/, and the entry points at the root) answers --help with what it does, its
options and what it changes, and does nothing else; show_result.py's summary of a job."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

COMMANDS = sorted(
    [p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "scripts").glob("*/*") if p.suffix in (".sh", ".py")]
    + ["runpod_handler.py", "setup_network_venv.py", ".runpod/handler.py"]
)
FOR_DEVELOPERS_OR_CI = ("scripts/bench/", "scripts/ci/", "scripts/dev/")


def run_command(command: str, *args: str, cwd: Path, home: Path, **env_extra: str) -> subprocess.CompletedProcess:
    interpreter = ["bash"] if command.endswith(".sh") else [sys.executable]
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home), "PYTHONDONTWRITEBYTECODE": "1", **env_extra}
    return subprocess.run([*interpreter, str(REPO_ROOT / command), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_every_command_is_listed():
    assert {"scripts/boot/start.sh", "scripts/ops/prefetch_models.py", "scripts/dev/show_result.py",
            "scripts/ci/image_smoke_test.sh", "scripts/bench/bench.py", "runpod_handler.py"} <= set(COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_and_changes_nothing(command, flag, tmp_path):
    """Run where anything it wrote would show: an empty working directory, HOME, TMPDIR and $OUT, and the
    settings pointed into them."""
    cwd, home, out = tmp_path / "cwd", tmp_path / "home", tmp_path / "out"
    for d in (cwd, home, out):
        d.mkdir()
    proc = run_command(command, flag, cwd=cwd, home=home, OUT=str(out), NETWORK_VOLUME_PATH=str(home / "volume"),
                      F5_LOCAL_ROOT=str(home / "local"), F5_WORKER_CACHE=str(home / "cache"),
                      HF_HOME=str(home / "hf"), RESULT_DUMP_DIR=str(out / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert re.search(r"^usage:", text, re.IGNORECASE | re.MULTILINE), text
    assert "changes" in text.lower(), f"{command} --help does not say what it changes:\n{text}"
    if command.startswith(FOR_DEVELOPERS_OR_CI):
        assert re.search(r"for (developers|CI)", text, re.IGNORECASE), f"{command} is not marked as a developer's or CI's"
    assert proc.stderr.strip() == ""
    assert [list(d.iterdir()) for d in (cwd, home, out)] == [[], [], []]


def test_the_handlers_help_lists_runpods_own_options(tmp_path):
    """runpod-python parses these itself in serverless.start; the handler's --help, given before any model
    loads, must describe each of them."""
    from runpod.serverless import parser

    text = run_command("runpod_handler.py", "--help", cwd=tmp_path, home=tmp_path).stdout
    options = {s for action in parser._actions for s in action.option_strings}
    assert options >= {"--test_input", "--rp_serve_api", "--rp_log_level"}
    assert {o for o in options if o not in text} == set()
    assert "loading" not in run_command("runpod_handler.py", "-h", cwd=tmp_path, home=tmp_path).stderr


def result_of(model: str, **extra) -> dict:
    words = [{"word": w, "start": i * 0.4, "end": i * 0.4 + 0.3, "confidence": 0.0, "char_start": 0, "char_end": 1}
             for i, w in enumerate("one two three four five six seven eight nine ten".split())]
    return {"audio_base64": base64.b64encode(b"RIFF" + bytes(100)).decode(), "format": "wav", "sample_rate": 24000,
            "duration": 4.0, "seed": 1, "chunks": 1, "model": model, "words": words,
            "captions": {"srt": "1\n00:00:00,000 --> 00:00:04,000\none two\n\n", "vtt": "WEBVTT\n\n"},
            "timings_estimated": True, "aligner": "sphinx",
            "quality": {"alignment_score": 0.0, "retries": 2, "flagged_words": list(range(10))},
            "timing": {"total_ms": 5168.4, "rtf": 1.29}, "warnings": [], "delivery": "inline", **extra}


@pytest.mark.parametrize("model", ["tiny", "F5TTS_v1_Base"])
def test_show_result_says_where_the_files_are(model, tmp_path):
    path = tmp_path / "local_test.json"
    path.write_text(json.dumps(result_of(model)))
    proc = run_command("scripts/dev/show_result.py", str(path), cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for suffix in (".wav", ".srt", ".vtt"):
        assert str(path.with_suffix(suffix)) in out and path.with_suffix(suffix).is_file()
    assert path.with_suffix(".wav").read_bytes() == b"RIFF" + bytes(100)
    assert path.with_suffix(".srt").read_text() == result_of(model)["captions"]["srt"]
    assert "alignment score 0.00" in out and "10 word(s) flagged" in out and "2 retries" in out
    assert "... 2 more" in out
    assert ("speaks noise" in out) == (model == "tiny")
    assert not re.search(r"[A-Za-z0-9+/]{60,}", out)


def test_show_result_on_a_failed_job_and_a_bucket_delivery(tmp_path):
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"error": "text: is empty"}))
    proc = run_command("scripts/dev/show_result.py", str(failed), cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 1 and "job failed: text: is empty" in proc.stdout
    linked = tmp_path / "linked.json"
    result = result_of("F5TTS_v1_Base", delivery="bucket", audio_url="https://bucket.example/a.wav",
                       caption_urls={"srt": "https://bucket.example/a.srt"})
    del result["audio_base64"], result["captions"]
    linked.write_text(json.dumps(result))
    proc = run_command("scripts/dev/show_result.py", str(linked), cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 0
    assert "https://bucket.example/a.wav" in proc.stdout and "srt: https://bucket.example/a.srt" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.json", "linked.json"]


@pytest.mark.parametrize("args", [[], ["missing.json"]])
def test_show_result_without_a_readable_file_is_a_usage_error(args, tmp_path):
    proc = run_command("scripts/dev/show_result.py", *args, cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 2 and "usage:" in proc.stderr and "Traceback" not in proc.stderr
