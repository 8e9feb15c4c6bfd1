"""The image smoke test (scripts/ci/image_smoke_test.sh) as part of the suite.

Builds the images with podman on a debootstrapped Debian base. The thin Dockerfile.runpod boots four
times against a temporary volume (the first boot builds the venv and answers test_input.json, the second
reuses it and answers over HTTP, the third runs as on a queue endpoint: runpod's worker loop against
tests/runpod_platform.py; the fourth as on a load-balancing endpoint: SERVE=http, /ping, then OpenAI's
/v1/audio/speech). The Hub's .runpod/Dockerfile, its environment baked in, boots once with no
volume and no network and answers test_input.json; committing its 8 GB layer takes minutes, so that test
runs only with F5_TEST_BAKED_IMAGE=1 (.ci/run sets it). Needs root (rootful podman, apt-get for missing
tools); measured times in docs/testing.md.

One run of the smoke test (scripts/ci/image_smoke_test.sh), started in the background as soon as the run's
tests are collected, builds the images these tests check while the other tests run (tests/image_smoke.py);
these tests run last and read their own image's verdict from its log.
"""

from __future__ import annotations

import os
import re

import pytest
from image_smoke import TEST_TIMEOUT_S

BAKED_SWITCH = "F5_TEST_BAKED_IMAGE"


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_the_thin_image_builds_boots_four_ways_and_answers_the_test_job(image_smoke_runs):
    log = image_smoke_runs.log_of("thin")
    # That boot 1 built the venv and boot 2 reused it without building is checked by the smoke test, in each boot's
    # own log (phase=publish; "is ready; reusing it" and no phase=create-venv): it fails otherwise. Boot times
    # are reported, not compared: how fast a boot is depends on the machine.
    assert re.search(r"boot 1 \(cold, builds the venv\): [\d.]+s to the handler, [\d.]+s", log)
    assert re.search(r"boot 2 \(warm, reuses the venv\): [\d.]+s to the handler, [\d.]+s", log)
    assert re.search(r"boot 3 posted: [\d.]+s of audio; [1-9]\d* heartbeats", log)
    assert "boot 3 (as deployed, runpod's worker loop)" in log
    # boot 4: /ping reached 200 on PORT_HEALTH (204 accepted before it), and the WAV from /v1/audio/speech on
    # PORT decoded (the script checks both, its content type and exit 0 on SIGTERM)
    assert re.search(r"boot 4 spoke: [\d.]+s of \d+ Hz audio from /v1/audio/speech", log)
    assert re.search(r"boot 4 \(SERVE=http, load-balancing\): [\d.]+s to /ping 200", log)
    assert re.search(r"image size:  \d+ MB", log)


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.baked
@pytest.mark.skipif(os.environ.get(BAKED_SWITCH) != "1",
                    reason=f"the baked image's build commits 8 GB (minutes): set {BAKED_SWITCH}=1, as .ci/run does")
def test_the_baked_image_boots_without_volume_or_network_and_answers_the_test_job(image_smoke_runs):
    log = image_smoke_runs.log_of("baked")
    # The smoke test checks the build's log (the venv was built into the image) and boot 5's: no volume found, the
    # baked venv reused, no venv phase run at boot, the job completed; and decodes the WAV it answered.
    assert re.search(r"baked image: \d+ MB \(\d+ MB over the base\), built in [\d.]+s", log)
    assert re.search(r"boot 5 answer: [\d.]+s of \d+ Hz audio", log)
    assert re.search(r"boot 5 \(baked, no volume, no network\): [\d.]+s to the handler, [\d.]+s", log)
