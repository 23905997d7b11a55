"""The voice page in a real Chromium with a WAV file as its microphone, against the real brokers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from devkit.servers import free_port, serve
from devkit.speech import REPO, kokoro_speech, words
from gateway.app import create_app
from tests.browser import Browser, chromium, microphone_wav
from tests.gateway.conftest import gateway_settings
from voicestack_common.live import Partial

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


def test_voices_are_grouped_by_language_and_the_language_picks_one(gateway_url: str) -> None:
    catalog = httpx.get(f"{gateway_url}/api/voice/voices").json()
    details = {voice["id"]: voice for voice in catalog.get("details", [])}
    with chromium(gateway_url + "/") as browser:
        page = browser.page
        page.wait_for_selector(f"#voice option[value='{catalog['default_voice']}']", state="attached")
        groups = page.evaluate(
            """() => [...document.querySelectorAll('#voice optgroup')].map((group) =>
                [group.label, [...group.querySelectorAll('option')].map((option) => option.value)])"""
        )
        listed = [voice for _, voices in groups for voice in voices]
        assert sorted(listed) == sorted(catalog["voices"])  # every voice once, each in a group
        for label, voices in groups:
            assert {details[v]["language_name"] if v in details else "Other" for v in voices} == {label}
        assert len(groups) == len({details[v]["language_name"] if v in details else "Other" for v in listed})

        def code(voice: str) -> str | None:
            return details[voice]["lang_code"] if voice in details else (voice[0] if "_" in voice else None)

        page.select_option("#language", "en")
        assert code(page.input_value("#voice")) in ("a", "b")
        for language, kokoro in (("es", "e"), ("fr", "f"), ("ja", "j")):
            page.select_option("#language", language)
            chosen = page.input_value("#voice")
            if any(code(v) == kokoro and details.get(v, {}).get("available", True) for v in catalog["voices"]):
                assert code(chosen) == kokoro, (language, chosen)
            else:
                assert chosen == ""  # no voice speaks it: the server's choice
        page.select_option("#language", "")  # Detect: the reply follows the language heard
        assert page.input_value("#voice") == ""
        page.select_option("#language", "de")  # Kokoro speaks no German: the default voice speaks
        assert page.input_value("#voice") == ""
        assert page.locator("#error").is_hidden()


# A tone at 48 kHz through the capture worklet, rendered offline: what comes out at 16 kHz.
RENDER_TONE = """
async (frequency) => {
  const context = new OfflineAudioContext(1, 48000, 48000);
  await context.audioWorklet.addModule("page/capture-worklet.js");
  const tone = new OscillatorNode(context, { frequency });
  const node = new AudioWorkletNode(context, "pcm16-capture", {
    numberOfInputs: 1, numberOfOutputs: 0, processorOptions: { targetRate: 16000, chunkMs: 40 },
  });
  const chunks = [];
  node.port.onmessage = (event) => chunks.push(...new Int16Array(event.data.pcm));
  tone.connect(node);
  tone.start();
  await context.startRendering();
  await new Promise((resolve) => setTimeout(resolve, 100));
  return chunks;
}
"""


def test_capture_worklet_resamples_48k_to_16k_without_aliasing(gateway_url: str) -> None:
    with chromium(gateway_url + "/") as browser:
        for frequency, passes in ((440, True), (3000, True), (10_000, False), (15_000, False)):
            samples = np.array(browser.page.evaluate(RENDER_TONE, frequency), dtype=np.float64) / 32768
            assert len(samples) >= 15_000  # one second at 16 kHz, less the last unflushed chunk
            steady = samples[1600:]
            rms = float(np.sqrt(np.mean(steady**2)))
            if passes:
                spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
                peak = np.argmax(spectrum) * 16_000 / len(steady)
                assert abs(peak - frequency) < 5, (frequency, peak)
                assert rms == pytest.approx(0.5**0.5, rel=0.02)  # a full-scale sine, kept whole
            else:
                assert rms < 0.003, (frequency, rms)  # above 8 kHz: filtered out, not folded back


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
        # The session ends (commit, stop, closed); the release's commit may come after the silence
        # rule ended the utterance, which the server answers nothing_to_commit: no error for the user.
        browser.wait_for("stats.events.closed >= 1")
        stats = browser.stats()
        assert stats["liveSessions"] == 1  # live recognition, not the upload fallback
        assert stats["commits"] == 1
        assert stats["fileTurns"] == 0
        assert stats["errors"] == []
        assert set(stats["quietErrors"]) <= {"nothing_to_commit"}
        assert page.locator("#error").is_hidden()
        screenshot(browser, "transcript")


def test_detect_tags_each_final_with_the_language_heard(gateway_url: str, question_wav: tuple[Path, float]) -> None:
    path, seconds = question_wav
    with chromium(gateway_url + "/", microphone=path) as browser:
        page = browser.page
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        page.select_option("#language", "")  # Detect: no language goes to the STT broker
        page.keyboard.down("Space")
        browser.wait_for(f"stats.sentBytes >= {int(seconds * 16_000 * 2)}")
        page.keyboard.up("Space")
        final = page.locator("#finals li").first
        final.wait_for()
        assert final.get_attribute("data-language") == "en"
        assert final.locator(".lang").inner_text().lower() == "en"
        assert {"weather", "paris"} <= set(words(final.inner_text()))
        assert page.locator("#error").is_hidden()


# A partial event as the live protocol defines it, shown through the page's own renderer.
SHOW_PARTIAL = """
async (event) => {
  const { showPartial } = await import("./page/transcript.js");
  showPartial(document, event);
  const line = document.querySelector("#partial");
  return [line.querySelector(".stable").textContent, line.querySelector(".unstable").textContent];
}
"""


def test_partials_show_the_stable_words_then_the_tail(gateway_url: str) -> None:
    """Partials depend on a free decoder (they are skipped, never queued, when it is busy), so how
    they look is checked here with the protocol's own event, not left to the machine's load."""
    partial = Partial(
        utterance_id=1, text="What is the weather", stable="What is", unstable="the weather", start=0, end=1
    )
    with chromium(gateway_url + "/") as browser:
        shown = browser.page.evaluate(SHOW_PARTIAL, partial.model_dump())
        assert shown == ["What is", " the weather"]
        assert browser.page.locator("#partial").inner_text() == "What is the weather"
        tail_only = partial.model_copy(update={"stable": "", "unstable": "What is the weather"})
        assert browser.page.evaluate(SHOW_PARTIAL, tail_only.model_dump()) == ["", "What is the weather"]


def test_hands_free_ends_utterances_by_itself(gateway_url: str, question_wav: tuple[Path, float]) -> None:
    """Hands-free: the server's voice activity detection ends the utterance; the page never commits."""
    path, _ = question_wav
    with chromium(gateway_url + "/", microphone=path) as browser:
        page = browser.page
        page.get_by_role("radio", name="Hands-free").check()
        page.get_by_role("button", name="Start listening").click()
        page.wait_for_selector("#finals li")
        heard = words(page.locator("#finals li").first.inner_text())
        assert {"weather", "paris", "today"} <= set(heard), heard
        stats = browser.stats()
        assert stats["commits"] == 0
        events = stats["events"]
        assert isinstance(events, dict)
        # One utterance, ended by the server's voice activity detection (partials come when a decoder is free).
        assert {k: n for k, n in events.items() if k != "partial"} == {
            "ready": 1,
            "speech_started": 1,
            "speech_stopped": 1,
            "final": 1,
        }
        # Still listening after the utterance ended.
        assert page.get_by_role("button", name="Stop listening").get_attribute("aria-pressed") == "true"
        screenshot(browser, "hands-free")
        page.get_by_role("button", name="Stop listening").click()
        page.get_by_role("button", name="Start listening").wait_for()


def test_media_recorder_fallback_sends_webm(gateway_url: str, question_wav: tuple[Path, float]) -> None:
    """Where AudioWorklet is missing (forced here with ``?recorder``), WebM/Opus from MediaRecorder."""
    path, seconds = question_wav
    with chromium(gateway_url + "/?recorder", microphone=path) as browser:
        page = browser.page
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        page.keyboard.down("Space")
        browser.wait_for(f"stats.sentChunks >= {int(seconds / 0.25)}")  # 250 ms slices
        page.keyboard.up("Space")
        page.wait_for_selector("#finals li")
        assert page.locator("#capture-kind").inner_text() == "WebM/Opus"
        heard = words(page.locator("#finals li").first.inner_text())
        assert {"weather", "paris", "today"} <= set(heard), heard


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


def test_a_service_down_shows_its_message(tts_url: str, question_wav: tuple[Path, float]) -> None:
    """No STT broker behind the gateway: the strip says so, and talking says a service is down."""
    settings = gateway_settings(stt_urls=f"http://127.0.0.1:{free_port()}", tts_urls=tts_url)
    path, _ = question_wav
    with serve(create_app(settings), ready_path="/healthz") as url, chromium(url + "/", microphone=path) as browser:
        page = browser.page
        page.wait_for_selector('#health [data-service="stt"][data-level="down"]')
        page.keyboard.down("Space")
        page.wait_for_selector("#error:not([hidden])")
        page.keyboard.up("Space")
        assert "down or busy" in page.locator("#error-text").inner_text()
        assert browser.stats()["finals"] == 0


# What the page says for each answer the gateway can give (api.js's explain()).
EXPLAIN = """
async ([code, status, retryAfter]) => {
  const { explain } = await import("./page/api.js");
  return explain(code, status, "the broker said so", retryAfter);
}
"""


ERROR_SENTENCES = [
    ("unauthorized", 401, None, "needs an API key"),
    ("invalid_api_key", 401, None, "API key was rejected"),
    ("rate_limited", 429, "7", "rate-limiting this key. Try again in 7 s."),
    ("no_upstream", 503, None, "down or busy (the broker said so)"),
    ("saturated", 503, "2", "down or busy (the broker said so). Try again in 2 s."),
    ("upstream_timeout", 504, None, "failed (the broker said so)"),
    ("too_many_sessions", 0, None, "Too many live sessions"),
]


def test_error_sentences(gateway_url: str) -> None:
    with chromium(gateway_url + "/") as browser:
        for code, status, retry_after, expected in ERROR_SENTENCES:
            assert expected in browser.page.evaluate(EXPLAIN, [code, status, retry_after]), code


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
