"""Whisper for voices uploaded without ref_text: a model missing from the cache fails at once where it cannot
be downloaded, a cached one loads without the network, and each library log line is printed once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, free_port
from f5_worker.errors import JobError
from f5_worker.transcribe import WhisperTranscriber

SILENCE = np.zeros(24000, dtype=np.float32)

# as runpod_handler.py sets up logging, then one transcription; prints the job's error and the pipeline's state
CHILD_PROGRAM = """
import json, logging, sys
import numpy as np
logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
from f5_worker.transcribe import WhisperTranscriber, hub_logs_once
hub_logs_once()
asr = WhisperTranscriber(sys.argv[1], device="cpu", offline=sys.argv[2] == "offline")
try:
    text, error = asr(np.zeros(24000, dtype=np.float32), 24000), None
except Exception as exc:
    text, error = None, str(exc)
logging.getLogger("huggingface_hub.utils._http").warning("hub line")
logging.getLogger("transformers.pipelines").warning("transformers line")
print(json.dumps({"error": error, "loaded": asr.loaded}))
"""


def transcribe_in_a_process(model: str, mode: str, hf_home: Path, **env_extra: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(hf_home), PYTHONPATH=str(REPO_ROOT), **env_extra)
    proc = subprocess.run([sys.executable, "-c", CHILD_PROGRAM, model, mode], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_hub_that_cannot_be_reached_fails_the_upload_at_once_and_logs_each_line_once(tmp_path):
    """Before: huggingface_hub retried each file five times with back-off (about 30 s), and its lines came
    out twice. The hub here is a closed local port, so nothing depends on this machine's network."""
    result, stderr = transcribe_in_a_process("openai/whisper-tiny", "online", tmp_path / "hf",
                                             HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert not result["loaded"]
    assert result["error"].startswith("ref_text: not given, and the speech recognition model 'openai/whisper-tiny' "
                                      "is unavailable (not in the Hugging Face cache, and http://127.0.0.1:")
    assert "cannot be reached: ConnectError" in result["error"] and "give ref_text" in result["error"]
    assert "Retrying in" not in stderr
    for line in ("hub line", "transformers line"):
        assert stderr.count(line) == 1, stderr
        assert f"WARNING {'huggingface_hub.utils._http' if 'hub' in line else 'transformers.pipelines'}: {line}" \
            in stderr


def test_a_cached_model_loads_offline_from_the_cache(tmp_path):
    from tiny_whisper import make_tiny_whisper

    snapshot = tmp_path / "hf" / "hub" / "models--someone--tiny-whisper" / "snapshots" / "0123abcd"
    make_tiny_whisper(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    result, stderr = transcribe_in_a_process("someone/tiny-whisper", "offline", tmp_path / "hf",
                                             HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert result == {"error": None, "loaded": True}
    # transformers, loaded with the pipeline, logs through the worker's handler too, once
    assert stderr.count("transformers line") == 1 and "WARNING transformers.pipelines: transformers line" in stderr


def test_offline_without_the_model_in_the_cache_is_one_clear_error():
    asr = WhisperTranscriber("someone/not-cached-anywhere", device="cpu", offline=True)
    for _ in range(2):  # the second job gets the remembered failure
        with pytest.raises(JobError, match=r"unavailable \(not in the Hugging Face cache, and HF_HUB_OFFLINE is set\)"):
            asr(SILENCE, 24000)
    assert not asr.loaded


def test_a_model_path_that_is_no_directory_is_named(tmp_path):
    asr = WhisperTranscriber(str(tmp_path / "no-model-here"), device="cpu")
    with pytest.raises(JobError, match="no-model-here is not a directory"):
        asr(SILENCE, 24000)
