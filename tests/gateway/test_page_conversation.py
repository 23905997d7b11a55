"""The voice page's conversation mode in a real Chromium: spoken question, streamed reply text, reply
audio scheduled in the page's audio graph, barge-in, and past conversations (list, continue, delete)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from fastapi import Request, Response

from conversation.app import create_app as create_conversation
from devkit.servers import serve
from devkit.speech import kokoro_speech, words
from gateway.app import create_app
from tests.browser import chromium, microphone_wav
from tests.conversation.conftest import conversation_settings
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_page_browser import screenshot

pytestmark = [pytest.mark.engine, pytest.mark.slow]

QUESTION = "What is the weather like in Paris today?"
# Three sentences: the echo reply is spoken as three pieces, scheduled one after the other.
HEARD_BEFORE_BARGE_IN = 0.8  # seconds of the reply played before the user talks over it
SLOW_START_S = 1.0  # longer than the page's pre-roll and the microphone file's silent lead together
TYPED = "Good morning. Tell me about the sea. Thank you very much."


@pytest.fixture(scope="module")
def page_chat_url(stt_url: str, tts_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway with the real brokers and a conversation service answering with ``echo``."""
    database = tmp_path_factory.mktemp("page-conversations") / "store.sqlite3"
    settings = conversation_settings(f"sqlite:///{database}", allowed_responders=["echo", "openai"])
    conversation = create_conversation(settings)

    @conversation.middleware("http")
    async def slow_start(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # A conversation that takes a second to start: the words said meanwhile must not be lost.
        if request.method == "POST" and request.url.path == "/v1/conversations":
            await asyncio.sleep(SLOW_START_S)
        return await call_next(request)

    with serve(conversation) as conversation_url:
        settings = gateway_settings(stt_urls=stt_url, tts_urls=tts_url, conversation_urls=conversation_url)
        with serve(create_app(settings)) as url:
            yield url


@pytest.fixture(scope="module")
def question_mic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    return path, microphone_wav(path, kokoro_speech(QUESTION), tail=1.0)


def test_a_spoken_question_gets_a_spoken_reply_and_barge_in_stops_it(
    page_chat_url: str, question_mic: tuple[Path, float]
) -> None:
    path, seconds = question_mic
    with chromium(page_chat_url + "/", microphone=path) as browser:
        page = browser.page
        page.get_by_role("radio", name="Conversation").check()
        page.wait_for_selector("#voice option[value='jf_alpha']", state="attached")
        page.keyboard.down("Space")
        browser.wait_for(f"stats.sentBytes >= {int(seconds * 16_000 * 2)}")
        page.keyboard.up("Space")

        # The question comes back as the user's message, the reply streams in and starts playing.
        user = page.locator("#messages li.user").first
        user.wait_for()
        assert {"weather", "paris", "today"} <= set(words(user.inner_text()))
        browser.wait_for("stats.playing && stats.scheduledSamples > 0")
        assert "you said" in page.locator("#messages li.assistant").first.inner_text().lower()
        # the voice the reply is spoken in (English asked for: an English voice, unless none is offered)
        spoken = page.locator("#messages li.assistant").first.get_attribute("data-voice")
        assert spoken
        # push-to-talk ended the turn (its commit may follow the silence rule's end): no error shown
        assert page.locator("#error").is_hidden()
        assert browser.stats()["errors"] == []

        # Barge-in: pressing to talk while the reply plays silences it at once; the page tells the server
        # how much was heard, and the server keeps only those words of the reply.
        page.wait_for_function(f"() => window.voicestack.heardSeconds() > {HEARD_BEFORE_BARGE_IN}")
        page.keyboard.down("Space")
        stats = browser.stats()
        assert stats["playing"] is False
        assert stats["stoppedReplies"] == 1
        heard, scheduled = stats["lastHeardSeconds"], stats["scheduledSeconds"]
        assert isinstance(heard, float)
        assert isinstance(scheduled, float)
        assert HEARD_BEFORE_BARGE_IN < heard < scheduled
        page.keyboard.up("Space")
        page.wait_for_selector("#messages li.assistant.cancelled .unheard")
        assert f"you heard {heard:.1f} s of {scheduled:.1f} s" in page.locator("#playback").inner_text().lower()
        screenshot(browser, "barge-in")
        assert not [e for e in browser.console_errors if "WebSocket" not in e]


def test_a_reply_plays_whole_then_conversations_can_be_continued_and_deleted(page_chat_url: str) -> None:
    with chromium(page_chat_url + "/") as browser:
        page = browser.page
        page.get_by_role("radio", name="Conversation").check()
        page.wait_for_selector('#health [data-service="conversation"][data-level="up"]')
        # The server allows two responders: the page offers the choice, the default selected.
        responder = page.get_by_label("Responder")
        responder.wait_for()
        assert responder.locator("option").all_inner_texts() == ["echo (default)", "openai"]
        assert responder.input_value() == "echo"
        page.get_by_label("Or type").fill(TYPED)
        page.get_by_role("button", name="Send").click()

        # Every piece the server sent is scheduled in the page's audio graph, and plays to the end.
        browser.wait_for("stats.replies === 1 && stats.scheduledSamples > 0 && !stats.playing")
        stats = browser.stats()
        assert stats["stoppedReplies"] == 0
        sent, scheduled = stats["replyAudioSeconds"], stats["scheduledSeconds"]
        assert isinstance(sent, float)
        assert sent > 2.0
        assert scheduled == pytest.approx(sent, abs=0.01)
        reply = page.locator("#messages li.assistant").first.inner_text().lower()
        assert {"morning", "sea", "thank"} <= set(words(reply))
        screenshot(browser, "conversation")

        # The conversation is listed first (most recent); a new one empties the panel; continue brings it back.
        listed = page.locator("#conversations li")
        page.wait_for_selector('#conversations li[aria-current="true"]')
        before = listed.count()
        assert listed.first.get_attribute("aria-current") == "true"
        page.get_by_role("button", name="New conversation").click()
        assert page.locator("#messages li").count() == 0
        listed.first.get_by_role("button", name="Continue").click()
        page.wait_for_selector("#messages li.assistant")
        assert {"morning", "sea"} <= set(words(page.locator("#messages li.user").first.inner_text()))

        # Carry on in it: the next reply goes into the same conversation.
        page.get_by_label("Or type").fill("One more thing.")
        page.get_by_role("button", name="Send").click()
        browser.wait_for("stats.replies === 2")
        assert listed.count() == before

        listed.first.get_by_role("button", name="Delete").click()
        page.wait_for_function(f"() => document.querySelectorAll('#conversations li').length === {before - 1}")
        assert page.locator("#messages li").count() == 0
