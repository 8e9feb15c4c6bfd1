"""The image smoke test runs in the background while the rest of the suite runs.

Building and booting the images (scripts/ci/image_smoke_test.sh) takes minutes, most of it podman writing
layers to disk, while the rest of the suite is CPU-bound: run one after the other they would add those
minutes to every run. So when the run selects a `container` test, one background run of the smoke test starts
as soon as collection ends, covering the images the selected tests check (a test marked `baked` checks the
baked image, any other the thin one; a test that will be skipped needs none). The container tests are moved
to the end, where each waits for that run and reads its own image's verdict from the log ("thin image:
PASS", "baked image: PASS"). When the session ends, however early, a run still going gets SIGTERM on its
process group (the command in progress stops, the smoke test's clean-up removes its containers and images) and
is waited for. Hooks and the fixture are imported by conftest.py.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SMOKE_TEST = Path(__file__).resolve().parents[1] / "scripts" / "ci" / "image_smoke_test.sh"
RUN_TIMEOUT_S = 1800  # from the start of a run to its end; a cold first run (debootstrap, empty uv cache) fits
STOP_TIMEOUT_S = 180  # for the smoke test's clean-up after SIGTERM (removing an 8 GB image takes a while)
# a container test's limit: the background run's, then perhaps a run of its own (see ImageSmokeRuns.log_of)
TEST_TIMEOUT_S = 2 * (RUN_TIMEOUT_S + STOP_TIMEOUT_S)
LOG_TAIL_CHARS = 6000  # of the log shown by a failing test
PR_SET_PDEATHSIG = 1  # prctl option: the signal the child gets when its parent dies
IMAGES_ORDER = ("thin", "baked")  # the smoke test's order of the parts


def image_of(item: pytest.Item) -> str:
    """The image a container test checks."""
    return "baked" if item.get_closest_marker("baked") else "thin"


def will_skip(item: pytest.Item) -> bool:
    """Whether a skip or true skipif mark skips the test: its image needs no build."""
    if item.get_closest_marker("skip"):
        return True
    return any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif"))


def die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies, even by SIGKILL, so no build outlives the suite for long."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class ImageSmokeRun:
    """One background run of the smoke test for a set of images, its log in a temporary file."""

    def __init__(self, images: set[str]):
        self.images = [image for image in IMAGES_ORDER if image in images]
        self.setting = "both" if len(self.images) == 2 else self.images[0]
        fd, name = tempfile.mkstemp(prefix=f"f5-image-smoke-{self.setting}-", suffix=".log")
        self.log_path = Path(name)
        self.started = time.time()
        with os.fdopen(fd, "w") as log:
            # Its own session: SIGTERM reaches the command in progress too, not only the smoke test, which would
            # otherwise wait for a minutes-long build before its clean-up ran.
            self.proc = subprocess.Popen([str(SMOKE_TEST)], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=die_with_parent,
                                         env={**os.environ, "F5_SMOKE_IMAGES": self.setting})
        self.ended: float | None = None  # when the smoke test last wrote to its log: its end, not when it was reaped
        self.waited_s = 0.0  # how long the tests waited for it: what it added to the session

    def wait(self) -> int:
        """The smoke test's exit code, waiting up to RUN_TIMEOUT_S from its start; stops it past that."""
        left = RUN_TIMEOUT_S - (time.time() - self.started)
        waiting = time.monotonic()
        try:
            code = self.proc.wait(timeout=max(left, 0))
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the image smoke test ran past {RUN_TIMEOUT_S}s and was stopped\n{self.tail()}")
        finally:
            self.waited_s += time.monotonic() - waiting
        self.ended = self.ended or self.log_path.stat().st_mtime
        return code

    def stop(self) -> None:
        """SIGTERM to the run's process group, then wait for the smoke test's clean-up; SIGKILL only past that."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.ended = self.ended or self.log_path.stat().st_mtime

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        return f"(log: {self.log_path})\n{self.log()[-LOG_TAIL_CHARS:]}"

    def log_of(self, image: str) -> str:
        """The whole log, after checking that this image's part passed; fails the test with the log's tail."""
        code = self.wait()
        log = self.log()
        if f"{image} image: PASS" not in log:
            pytest.fail(f"the {image} image's smoke test failed (exit {code}, F5_SMOKE_IMAGES="
                        f"{self.setting})\n{self.tail()}")
        return log

    def reached(self, image: str) -> bool:
        """Whether the run got to this image's part: the parts before it passed."""
        self.wait()
        before = self.images[:self.images.index(image)]
        return all(f"{earlier} image: PASS" in self.log() for earlier in before)


class ImageSmokeRuns:
    """The session's runs: the background one started after collection, and any a test needs of its own."""

    def __init__(self) -> None:
        self.runs: list[ImageSmokeRun] = []
        self.background: ImageSmokeRun | None = None

    def start(self, images: set[str]) -> ImageSmokeRun:
        run = ImageSmokeRun(images)
        self.runs.append(run)
        return run

    def log_of(self, image: str) -> str:
        """This image's log, after checking that its part passed. In a run of both images a thin failure stops
        the smoke test before the baked part: then the baked image gets a run of its own, so each test still
        answers for its own image only."""
        run = self.background
        if run is None or image not in run.images or not run.reached(image):
            run = self.start({image})
        return run.log_of(image)

    def stop(self) -> None:
        """Every run still going is stopped and reaped; a passed run's log goes, a failed one's stays."""
        for run in self.runs:
            run.stop()
            if run.proc.returncode == 0:
                run.log_path.unlink(missing_ok=True)


RUNS_KEY = pytest.StashKey[ImageSmokeRuns]()


def runs_of(config: pytest.Config) -> ImageSmokeRuns:
    if RUNS_KEY not in config.stash:
        config.stash[RUNS_KEY] = ImageSmokeRuns()
    return config.stash[RUNS_KEY]


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(session, config, items):
    """The container tests last: they only wait for the background run, which had the others' time."""
    items.sort(key=lambda item: item.get_closest_marker("container") is not None)  # stable


def pytest_collection_finish(session):
    """The background run starts here, when a selected container test will run, and only then."""
    if session.config.option.collectonly:
        return
    images = {image_of(item) for item in session.items
              if item.get_closest_marker("container") and not will_skip(item)}
    if images:
        runs = runs_of(session.config)
        runs.background = runs.start(images)


def pytest_sessionfinish(session):
    """However the session ended (failure, -x, Ctrl-C), no run outlives it."""
    if RUNS_KEY in session.config.stash:
        session.config.stash[RUNS_KEY].stop()


def pytest_terminal_summary(terminalreporter, config):
    if RUNS_KEY not in config.stash:
        return
    for run in config.stash[RUNS_KEY].runs:
        seconds = (run.ended or time.time()) - run.started
        verdict = "exit 0" if run.proc.returncode == 0 else f"exit {run.proc.returncode}, log kept: {run.log_path}"
        terminalreporter.write_line(f"image smoke test (F5_SMOKE_IMAGES={run.setting}) ran {seconds:.0f}s "
                                    f"alongside the other tests, which then waited {run.waited_s:.0f}s for it; "
                                    f"{verdict}")


@pytest.fixture(scope="session")
def image_smoke_runs(request) -> ImageSmokeRuns:
    """The session's image smoke runs; a test reads its image's verdict with log_of(image)."""
    return runs_of(request.config)
