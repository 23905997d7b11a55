"""A real Chromium (Debian's package) driven by Playwright, with a WAV file as its microphone.

Never ``playwright install``: the browser is ``/usr/bin/chromium``, installed by scripts/bootstrap.sh.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from voicestack_common.audio import Pcm, resample
from voicestack_common.encode import encode_audio

CHROMIUM = "/usr/bin/chromium"
# Quiet, deterministic, offline: no GPU, no updates, no sync, no first-run UI, no network chatter.
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
]
# Answers the permission prompt with "allow" (left out: the prompt is refused).
ALLOW_MIC = "--use-fake-ui-for-media-stream"
DENY_PROMPTS = "--deny-permission-prompts"
TIMEOUT_MS = 60_000  # one step (a page load, a transcript) on a busy 2-core machine


def chromium_path() -> str:
    """Debian's Chromium; the test command's bootstrap installs it."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium package")
    return CHROMIUM


def microphone_wav(path: Path, speech: Pcm, *, lead: float = 0.3, tail: float = 0.0) -> float:
    """Write ``speech`` as a 48 kHz PCM16 WAV (Chromium's fake microphone); returns its seconds."""
    audio = resample(speech, 48_000)
    rate = audio.sample_rate
    samples = np.concatenate(
        [np.zeros(int(lead * rate), np.float32), audio.samples, np.zeros(int(tail * rate), np.float32)]
    )
    path.write_bytes(encode_audio(Pcm(samples, rate), "wav"))
    return len(samples) / rate


@dataclass
class Browser:
    """An open page and what its console said."""

    page: Page
    console_errors: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, object]:
        """The page's own counters (``window.voicestack.stats``)."""
        value = self.page.evaluate("() => ({...window.voicestack.stats})")
        assert isinstance(value, dict)
        return value

    def wait_for(self, expression: str, timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait until a JavaScript expression over ``stats`` holds."""
        self.page.wait_for_function(
            f"() => {{ const stats = window.voicestack.stats; return {expression}; }}", timeout=timeout_ms
        )


@contextlib.contextmanager
def chromium(url: str, *, microphone: Path | None = None, allow_mic: bool = True) -> Iterator[Browser]:
    """Chromium on ``url`` with ``microphone`` (a WAV played once) as the microphone."""
    args = list(BASE_ARGS)
    args.append(ALLOW_MIC if allow_mic else DENY_PROMPTS)
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}%noloop")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=args, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            opened = Browser(page)

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    opened.console_errors.append(message.text)

            page.on("console", on_console)
            page.on("pageerror", lambda error: opened.console_errors.append(f"uncaught: {error}"))
            page.goto(url)
            page.wait_for_function("() => window.voicestack !== undefined")
            yield opened
        finally:
            browser.close()
