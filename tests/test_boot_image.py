"""The image smoke test (scripts/ci/image_smoke_test.sh) as part of the suite.

Builds both images with podman on a debootstrapped Debian base. The thin Dockerfile.runpod boots three
times against a temporary volume (the first boot builds the venv and answers test_input.json, the second
reuses it and answers over HTTP, the third runs as on an endpoint: runpod's worker loop against
tests/runpod_platform.py). The Hub's .runpod/Dockerfile, its environment baked in, boots once with no
volume and no network and answers test_input.json. Needs root (rootful podman, apt-get for missing
tools); figures with warm caches in docs/testing.md.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.container
def test_both_images_build_boot_and_answer_the_test_job():
    run = subprocess.run([str(REPO / "scripts" / "ci" / "image_smoke_test.sh")], capture_output=True, text=True,
                         timeout=1800)
    log = run.stdout + run.stderr
    print(log[-4000:])
    assert run.returncode == 0, log[-6000:]
    assert "[smoke" in log and "PASS" in log
    # That boot 1 built the venv and boot 2 reused it without building is checked by the script, in each boot's
    # own log (phase=publish; "is ready; reusing it" and no phase=create-venv): it fails otherwise. Boot times
    # are reported, not compared: how fast a boot is depends on the machine.
    assert re.search(r"boot 1 \(cold, builds the venv\): [\d.]+s to the handler, [\d.]+s", log)
    assert re.search(r"boot 2 \(warm, reuses the venv\): [\d.]+s to the handler, [\d.]+s", log)
    assert re.search(r"boot 3 posted: [\d.]+s of audio; [1-9]\d* heartbeats", log)
    assert "boot 3 (as deployed, runpod's worker loop)" in log
    assert re.search(r"image size:  \d+ MB", log)
    # The baked image: its venv was built into the image (the build's log), and boot 4 found it there, with no
    # volume and no network, without building one (the script checks start.sh's and the builder's lines).
    assert re.search(r"baked image: \d+ MB \(\d+ MB over the base\), built in [\d.]+s", log)
    assert re.search(r"boot 4 answer: [\d.]+s of \d+ Hz audio", log)
    assert re.search(r"boot 4 \(baked, no volume, no network\): [\d.]+s to the handler, [\d.]+s", log)
