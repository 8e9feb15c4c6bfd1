"""The page (f5_worker/page, docs/page.md) in a real browser: headless Chromium from the system's packages
(scripts/ci/install_browser.sh installs it when missing), driven by Selenium, loading the page from
``SERVE=http python runpod_handler.py`` on the tiny models. A screenshot of each state is kept under
tmp/artifacts/page (the path is printed at the end of the run), and each test ends with no error in the
browser's console but the failed requests it caused on purpose."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import DEFAULT_VOICE_TEXT, DEFAULT_VOICE_WAV, REPO_ROOT, http_server_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "ci" / "install_browser.sh"
ARTIFACTS = REPO_ROOT / "tmp" / "artifacts" / "page"
FAST = {"nfe_step": "4", "seed": "1"}  # the form's Steps and Seed: the tiny model, quickly
WAIT_S = 180  # a hang guard for one job in the page (a busy 2-core machine), not a speed requirement
BAD_REQUEST = re.compile(r"/v1/synthesize - Failed to load resource: the server responded with a status of 400")


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """The system's chromium and chromedriver, installed by the project's script when missing."""
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"{INSTALL_SCRIPT.name} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    browser, driver = proc.stdout.strip().splitlines()[-1].removeprefix("browser: ").split()
    return browser, driver


@pytest.fixture(scope="module")
def server(worker_env, tmp_path_factory) -> str:
    """``SERVE=http python runpod_handler.py`` with STREAMING=1 (the page streams its speech); its base URL."""
    with http_server_process(worker_env, tmp_path_factory.mktemp("page-server"), STREAMING="1") as served:
        yield served.url


@pytest.fixture(scope="session")
def artifacts(request) -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    yield ARTIFACTS
    if reporter is not None:
        reporter.write_line(f"page screenshots: {ARTIFACTS}")


@pytest.fixture(scope="module")
def driver(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1300",
                     "--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--mute-audio"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    browser.set_script_timeout(60)
    yield browser
    browser.quit()


class Page:
    """The page in the browser, and what a test does with it."""

    def __init__(self, driver, base: str, artifacts: Path, name: str):
        self.driver, self.base, self.artifacts, self.name = driver, base, artifacts, name
        self.expected_failures = 0  # requests the test has the server refuse (400), which the console reports

    def open(self, width: int = 1200, height: int = 1300) -> Page:
        self.driver.set_window_size(width, height)
        self.driver.get(self.base + "/")
        self.wait(lambda: self.js("return document.body.dataset.ready"), "the page to be ready")
        assert self.js("return document.body.dataset.ready") == "true", self.text("#status")
        return self

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, what: str, seconds: float = WAIT_S):
        deadline = time.monotonic() + seconds
        while not (value := condition()):
            if time.monotonic() > deadline:
                self.shot("timed-out")
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)
        return value

    def el(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", selector)

    def fill(self, selector: str, value: str) -> None:
        element = self.el(selector)
        element.clear()
        if value:
            element.send_keys(value)

    def shot(self, state: str) -> None:
        self.driver.save_screenshot(str(self.artifacts / f"{self.name}-{state}.png"))

    def events(self) -> list[dict]:
        return self.js("return window.f5page.events")

    def speak(self, text: str, **fields: str) -> list[dict]:
        """Speak ``text`` with the form's other fields set; the events of this request, once it ended."""
        self.fill("#text", text)
        for name, value in {**FAST, **fields}.items():
            self.fill(f"#{name}", value)
        before = len(self.events())
        self.el("#speak-button").click()
        self.wait(lambda: any(e["type"] in ("done", "error") for e in self.events()[before:]), "the speech")
        return self.events()[before:]

    def seek(self, track: str, t: float) -> float:
        """Set the playback position with the track's slider; the position it took (the slider's step is 1 ms)."""
        return float(self.js("const s = document.querySelector(arguments[0]); s.value = String(arguments[1]);"
                             "s.dispatchEvent(new Event('input', {bubbles: true})); return s.value",
                             f"#{track}-position", t))

    def lit(self, track: str) -> tuple[int | None, str | None, int | None]:
        """The lit word: its index in the reader, its text there, and the lit timeline box's index."""
        return tuple(self.js(
            "const r = document.querySelector(arguments[0] + ' .reader .word.lit');"
            "const b = document.querySelector(arguments[0] + ' .lane .word.lit');"
            "return [r ? Number(r.dataset.i) : null, r ? r.textContent : null, b ? Number(b.dataset.i) : null]",
            f"#{track}-track"))

    def file(self, track: str, name: str) -> bytes:
        """A file the track offers for download, as the browser holds it."""
        data = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const blob = window.f5page.tracks[arguments[0]].files[arguments[1]];"
            "if (!blob) { done(null); return; }"
            "blob.arrayBuffer().then((b) => { const u = new Uint8Array(b); let s = '';"
            "  for (let i = 0; i < u.length; i += 32768) s += String.fromCharCode.apply(null, u.subarray(i, i + 32768));"
            "  done(btoa(s)); });", track, name)
        assert data is not None, f"{track} offers no {name}"
        return base64.b64decode(data)

    def console_errors(self) -> list[dict]:
        """Console entries at error level, but the refused requests this test asked for."""
        entries = [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        refused = [e for e in entries if e.get("source") == "network" and BAD_REQUEST.search(e["message"])]
        assert len(refused) <= self.expected_failures, refused
        return [e for e in entries if e not in refused]


@pytest.fixture
def page(driver, server, artifacts, request):
    driver.get("about:blank")
    driver.get_log("browser")  # what earlier tests left
    page = Page(driver, server, artifacts, request.node.name.removeprefix("test_"))
    yield page
    page.shot("end")
    assert page.console_errors() == []


def words_of(page: Page, track: str) -> list[dict]:
    return page.js("return window.f5page.tracks[arguments[0]].words", track)


def test_speaking_lights_each_word_as_it_is_said(page):
    text = "I have 42 apples. [pause:1s] Then three more."
    page.open()
    page.shot("ready")
    events = page.speak(text)
    assert [e for e in events if e["type"] == "error"] == []
    if page.js("return window.f5page.tracks.speak.playing"):
        page.el("#speak-track .play").click()  # pause: the position is then the slider's alone
    result = page.js("return window.f5page.results.speak")
    track = page.js("const t = window.f5page.tracks.speak; return {duration: t.duration, complete: t.complete}")
    assert track["complete"] and abs(track["duration"] - result["duration"]) < 1e-6, (track, result["duration"])

    # the downloaded audio is the whole speech; the captions are the result's
    wave, rate = sf.read(io.BytesIO(page.file("speak", "speech.wav")))
    assert rate == 24000 and abs(len(wave) / rate - result["duration"]) < 1 / rate
    for fmt in ("srt", "vtt", "ass"):
        assert page.file("speak", f"speech.{fmt}").decode() == result["captions"][fmt]

    words = words_of(page, "speak")
    assert [w["word"] for w in words] == ["I", "have", "42", "apples.", "Then", "three", "more."]
    for i, w in enumerate(words):  # the text as typed: the number as written
        assert text[w["char_start"]:w["char_end"]] == w["word"]
        if w["end"] - w["start"] < 0.004:
            continue
        t = page.seek("speak", (w["start"] + w["end"]) / 2)
        holding = [j for j, v in enumerate(words) if v["start"] <= t < v["end"]]
        assert page.lit("speak") == (holding[0], words[holding[0]]["word"], holding[0]), (t, i, holding)
    touching = [i for i in range(1, len(words)) if words[i - 1]["end"] == words[i]["start"] < words[i]["end"]]
    assert touching, words
    for i in touching:  # where one word ends the next begins: [start, end) lights the next
        assert page.seek("speak", words[i]["start"]) == words[i]["start"]
        assert page.lit("speak")[0] == i
    pause = (words[3]["end"] + words[4]["start"]) / 2  # inside the written pause: no word is said
    assert words[4]["start"] - words[3]["end"] >= 0.9
    page.seek("speak", pause)
    assert page.lit("speak") == (None, None, None)
    page.seek("speak", (words[2]["start"] + words[2]["end"]) / 2)
    assert page.lit("speak")[1] == "42"
    page.shot("the-number-lit")

    # the keyboard: arrows move along the timeline's word boxes, Enter plays from the word
    from selenium.webdriver.common.keys import Keys

    page.el("#speak-track .lane .word[tabindex='0']").send_keys(Keys.ARROW_RIGHT)
    assert page.js("return document.activeElement.dataset.i") == "1"
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert page.js("return window.f5page.tracks.speak.playing")
    assert page.js("return window.f5page.tracks.speak.position()") >= words[1]["start"] - 0.01
    page.el("#speak-track .play").click()  # pause
    assert not page.js("return window.f5page.tracks.speak.playing")


def test_a_longer_stream_plays_its_first_piece_before_the_last_arrives(page):
    text = ("This longer text is spoken in several pieces. The first of them plays while the others are made, "
            "one after another, until the very last words of it are heard.")
    page.open()
    events = page.speak(text, nfe_step="")  # the default 32 steps: each piece takes long enough to be seen coming
    answer = next(e for e in events if e["type"] == "answer")
    assert answer["contentType"].startswith("text/event-stream"), answer
    received = [e for e in events if e["type"] == "received"]
    assert len(received) >= 2, received  # the first piece is a clause; the rest is sized by the stream's pace
    order = [(e["type"], e.get("seq")) for e in events]
    assert order.index(("playing", 0)) < order.index(("received", received[-1]["seq"])), order
    page.shot("streamed")


def test_a_voice_is_uploaded_used_and_deleted(page):
    page.open()
    page.fill("#voice-name", "page-voice")
    page.el("#voice-clip").send_keys(str(DEFAULT_VOICE_WAV))
    page.fill("#voice-text", DEFAULT_VOICE_TEXT)
    page.el("#upload-button").click()
    page.wait(lambda: page.js("return [...document.querySelectorAll('#voice-list .voice-name')]"
                              ".some((e) => e.textContent === 'page-voice')"), "the voice in the list")
    assert page.js("return document.querySelector('#voice').value") == "page-voice"  # chosen for the next speech
    page.shot("uploaded")

    events = page.speak("Hello from a stored voice.")
    assert [e for e in events if e["type"] == "error"] == []
    request = next(e for e in events if e["type"] == "request")
    assert request["body"]["voice"] == "page-voice"
    assert page.js("return window.f5page.results.speak.duration") > 0
    page.shot("spoken")

    page.el("#voice-list button.delete[data-voice='page-voice']").click()
    page.wait(lambda: not page.js("return document.querySelector(\"#voice option[value='page-voice']\")"),
              "the voice gone from the choice")
    assert "page-voice" not in page.text("#voice-list")
    page.shot("deleted")


def test_aligning_an_uploaded_recording_boxes_its_words(page):
    page.open()
    page.el("#align-file").send_keys(str(DEFAULT_VOICE_WAV))
    page.fill("#align-text", DEFAULT_VOICE_TEXT)
    page.el("#align-button").click()
    page.wait(lambda: page.js("return window.f5page.results.align"), "the alignment")
    result = page.js("return window.f5page.results.align")
    words = words_of(page, "align")
    assert [w["word"] for w in words] == DEFAULT_VOICE_TEXT.split() == [w["word"] for w in result["words"]]
    assert page.js("return document.querySelectorAll('#align-track .lane .word').length") == len(words)
    info = sf.info(str(DEFAULT_VOICE_WAV))
    assert abs(page.js("return window.f5page.tracks.align.duration") - info.frames / info.samplerate) < 1e-3
    w = words[3]
    page.seek("align", (w["start"] + w["end"]) / 2)
    assert page.lit("align") == (3, w["word"], 3)
    assert page.js("return Object.keys(window.f5page.tracks.align.files)") == [
        "basic_ref_en.srt", "basic_ref_en.vtt", "basic_ref_en.ass"]
    page.shot("aligned")


def test_a_refused_request_shows_its_message_next_to_its_field(page):
    page.open()
    page.expected_failures = 3
    events = page.speak("Hello there.", speed="5")
    assert any(e["type"] == "error" for e in events)
    assert page.text("#speed-error").startswith("speed: must be less than or equal to 3")
    assert page.js("return document.querySelector('#speed').getAttribute('aria-invalid')") == "true"
    assert "speed-error" in page.js("return document.querySelector('#speed').getAttribute('aria-describedby')")
    page.shot("speed")

    page.speak("Hey! [paws] then", speed="1")  # a field's error goes when the request is sent again
    assert page.text("#speed-error") == ""
    assert page.text("#text-error").startswith("text: unknown tag '[paws]' at character 5")

    page.fill("#voice-name", "default")
    page.el("#voice-clip").send_keys(str(DEFAULT_VOICE_WAV))
    page.fill("#voice-text", DEFAULT_VOICE_TEXT)
    page.el("#upload-button").click()
    page.wait(lambda: page.text("#voice-name-error"), "the upload's error")
    assert page.text("#voice-name-error").startswith("name: 'default' names F5-TTS's built-in voice")
    page.shot("name")


def test_every_control_is_labelled_and_the_page_fits_a_phone(page):
    page.open(width=390, height=844)
    unlabelled = page.js(
        "return [...document.querySelectorAll('input, select, textarea, button, .reader')].filter((e) => !("
        "  (e.labels && e.labels.length) || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')"
        "  || (e.tagName === 'BUTTON' && e.textContent.trim()))).map((e) => e.outerHTML)")
    assert unlabelled == []
    events = page.speak("A phone is narrow.")
    assert [e for e in events if e["type"] == "error"] == []
    overflow = page.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    page.shot("phone")
