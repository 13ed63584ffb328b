"""The web page served by `remotemedia serve --pipelines`, in headless Chromium: the
microphone is a speech WAV (Chromium's fake capture device), the page streams it to the
`vad` example pipeline and must show the speech events the pipeline emits.

Needs Debian's chromium and chromium-driver and the selenium package; skipped without
them unless REMOTEMEDIA_REQUIRE_BROWSER=1 (CI sets it). The VAD model must be found
(see crates/remotemedia-speech/MODELS.md)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from _util import cli

REPO = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("REMOTEMEDIA_REQUIRE_BROWSER") == "1"


def _need(ok, why):
    if not ok:
        if REQUIRED:
            pytest.fail(why + " (REMOTEMEDIA_REQUIRE_BROWSER=1)")
        pytest.skip(why)


@pytest.fixture
def speech_wav(tmp_path):
    _need(shutil.which("espeak-ng") and shutil.which("sox"), "espeak-ng and sox make the speech file")
    raw = tmp_path / "raw.wav"
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "Hello there. This sentence is spoken to the browser page."],
                   check=True)
    # 1 s of silence, the sentence, 2 s of silence; 48 kHz mono 16-bit as a microphone.
    subprocess.run(["sox", str(raw), "-r", "48000", "-b", "16", "-c", "1", str(wav), "pad", "1", "2"], check=True)
    return wav


@pytest.fixture
def server(tmp_path):
    exe = cli()
    _need(exe is not None, "the remotemedia CLI is not built")
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([exe, "serve", "--listen", "127.0.0.1:0", "--pipelines",
                             str(REPO / "examples" / "sessions" / "pipelines")],
                            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.wait(timeout=30)
        _need(False, "serve did not start (is the VAD model installed?): " + log.read_text()[-500:])
    yield line.split()[-1]
    proc.terminate()
    proc.wait(timeout=30)


def test_page_shows_the_speech_events_of_the_microphone(server, speech_wav):
    webdriver = pytest.importorskip("selenium.webdriver") if not REQUIRED else __import__(
        "selenium.webdriver", fromlist=["webdriver"])
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    _need(chromium and driver_path, "chromium and chromedriver (Debian: chromium chromium-driver)")
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={speech_wav}", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"http://{server}/?pipeline=vad")
        deadline = time.monotonic() + 20
        while not driver.find_elements(By.CSS_SELECTOR, "#pipeline option[value=vad]"):
            assert time.monotonic() < deadline, "the page did not list the pipelines"
            time.sleep(0.1)
        driver.find_element(By.ID, "start").click()
        deadline = time.monotonic() + 45
        text = ""
        while time.monotonic() < deadline:
            text = driver.find_element(By.ID, "events").text
            if "speech_start" in text and "speech_end" in text:
                break
            time.sleep(0.2)
        status = driver.find_element(By.ID, "status").text
        assert "speech_start" in text and "speech_end" in text, f"status: {status}; events: {text}"
        assert status.startswith("live"), status
        # Barge-in from the page: the server answers `flushed`.
        driver.find_element(By.ID, "flush").click()
        deadline = time.monotonic() + 10
        while "flushed" not in driver.find_element(By.ID, "events").text:
            assert time.monotonic() < deadline, "no `flushed` after the stop-talking button"
            time.sleep(0.1)
    finally:
        driver.quit()
