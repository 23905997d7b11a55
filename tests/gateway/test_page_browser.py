"""The voice page in a real Chromium with a WAV file as its microphone, against the real brokers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import create_app
from tests.browser import Browser, chromium, microphone_wav
from tests.gateway.conftest import gateway_settings
from tests.servers import serve
from tests.speech import REPO, kokoro_speech, words

pytestmark = [pytest.mark.engine, pytest.mark.slow]

QUESTION = "What is the weather like in Paris today?"
# Set to a folder (docs/images) to keep screenshots of the main states; unset, none are taken.
SCREENSHOTS_ENV = "VOICESTACK_PAGE_SCREENSHOTS"
KEY = "page-test-key"


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A Kokoro question as the microphone, with a second of silence after it."""
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    return path, microphone_wav(path, kokoro_speech(QUESTION), tail=1.0)


@pytest.fixture(scope="module")
def keyed_gateway_url(stt_url: str, tts_url: str) -> Iterator[str]:
    """A gateway with API keys on."""
    with serve(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, api_keys=KEY))) as url:
        yield url


def screenshot(browser: Browser, name: str) -> None:
    """Keep a screenshot of a state for docs/page.md, when asked to."""
    if not (folder := os.environ.get(SCREENSHOTS_ENV)):
        return
    path = REPO / folder / f"page-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.page.screenshot(path=str(path), full_page=True)


def test_page_loads_without_console_errors(gateway_url: str) -> None:
    with chromium(gateway_url + "/") as browser:
        page = browser.page
        page.wait_for_selector('#health [data-service="stt"][data-level="up"]')
        page.wait_for_selector('#health [data-service="tts"][data-level="up"]')
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        assert page.get_by_role("button", name="Hold to talk").is_visible()
        assert page.locator("#finals").get_attribute("aria-live") == "polite"
        assert page.locator("#error").is_hidden()
        assert browser.console_errors == []


def test_push_to_talk_shows_the_words(gateway_url: str, question_wav: tuple[Path, float]) -> None:
    path, seconds = question_wav
    with chromium(gateway_url + "/", microphone=path) as browser:
        page = browser.page
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        page.keyboard.down("Space")
        # Hold until the whole question has gone out (the fake microphone plays the file once).
        browser.wait_for(f"stats.sentBytes >= {int(seconds * 16_000 * 2)}")
        page.keyboard.up("Space")
        page.wait_for_selector("#finals li")
        heard = words(page.locator("#finals li").first.inner_text())
        assert {"weather", "paris", "today"} <= set(heard), heard
        assert browser.stats()["commits"] == 1 or browser.stats()["fileTurns"] == 1
        screenshot(browser, "transcript")


def test_refused_microphone_shows_its_message(gateway_url: str) -> None:
    with chromium(gateway_url + "/", allow_mic=False) as browser:
        page = browser.page
        page.get_by_role("button", name="Hold to talk").focus()
        page.keyboard.down("Space")
        page.wait_for_selector("#error:not([hidden])")
        page.keyboard.up("Space")
        assert "Microphone access was refused" in page.locator("#error-text").inner_text()
        assert browser.stats()["sentChunks"] == 0
        screenshot(browser, "mic-refused")


def test_wrong_key_shows_its_message(keyed_gateway_url: str) -> None:
    with chromium(keyed_gateway_url + "/") as browser:
        page = browser.page
        # The page shell and health are public; the voices need the key.
        page.wait_for_selector('#health [data-service="stt"][data-level="up"]')
        page.wait_for_selector("#error:not([hidden])")
        assert "needs an API key" in page.locator("#error-text").inner_text()
        page.get_by_label("API key").fill("not-the-key")
        page.get_by_role("button", name="Save key").click()
        page.wait_for_function(
            "() => document.querySelector('#error-text').textContent.includes('API key was rejected')"
        )
        screenshot(browser, "wrong-key")
        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Save key").click()
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        assert page.locator("#error").is_hidden()
