"""Tools in the voice loop, end to end: the real brokers, the conversation service with a tools file, a
tool-calling OpenAI-compatible server process, the real MQTT bridge and a real mosquitto.

"Turn on the kitchen lights", spoken, puts ``ON`` on the kitchen light's topic; a topic the bridge does
not allow is refused with an error event; a slow tool times out and the user hears an apology; a
cancel during a tool call cancels it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI, Request

from conversation.app import create_app as create_conversation
from devkit.mqtt_kit import BridgeProcess, Mosquitto, Subscriber, subscriber
from devkit.servers import serve
from devkit.speech import words
from gateway.app import create_app
from tests.conversation.conftest import conversation_settings
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_conversations import SILENCE, TIMEOUT, Chat, joined_wav, pcm16, transcribe, ws_url

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PREFIX = "vs-tools"
KITCHEN = "home/kitchen/light/set"
GARAGE = "home/garage/door/set"


class SlowTool:
    """An ``http`` tool's server that answers after 30 s, unless the caller drops the request first."""

    def __init__(self) -> None:
        self.asked = 0
        self.dropped = 0
        self.app = FastAPI()

        @self.app.get("/weather")
        async def weather(request: Request) -> dict[str, Any]:
            self.asked += 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    self.dropped += 1
                    return {}
                await asyncio.sleep(0.02)
            return {"sky": "grey"}


@pytest.fixture(scope="module")
def mqtt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, str]]:
    """mosquitto, and the MQTT bridge in front of it that may publish under ``home/kitchen/`` only."""
    workdir = tmp_path_factory.mktemp("mqtt")
    broker = Mosquitto(workdir)
    broker.start()
    bridge = BridgeProcess(workdir, broker.url, PREFIX, publish_allow="home/kitchen/#")
    try:
        bridge.start()
        yield broker, bridge.url
    finally:
        bridge.stop()
        broker.stop()


@pytest.fixture(scope="module")
def slow_tool() -> Iterator[tuple[SlowTool, str]]:
    tool = SlowTool()
    with serve(tool.app, ready_path=None) as url:
        yield tool, url


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    openai_server: str,
    stt_url: str,
    tts_url: str,
    mqtt: tuple[Mosquitto, str],
    slow_tool: tuple[SlowTool, str],
) -> Iterator[str]:
    """The gateway, and behind it the conversation service with the tools and the openai responder."""
    workdir = tmp_path_factory.mktemp("tools")
    tools = workdir / "tools.yaml"
    tools.write_text(
        f"""
tools:
  - type: mqtt_publish
    name: set_light
    description: Turn a light on or off.
    topics: [{KITCHEN}, {GARAGE}]
  - type: http
    name: weather
    description: The weather in a city.
    url: {slow_tool[1]}/weather
    method: GET
    parameters: {{type: object, properties: {{city: {{type: string}}}}, required: [city]}}
    timeout: 1.0
"""
    )
    settings = conversation_settings(
        f"sqlite:///{workdir / 'store.sqlite3'}",
        responder="openai",
        openai_base_url=openai_server,
        tools_file=tools,
        mqtt_bridge_url=mqtt[1],
    )
    with serve(create_conversation(settings)) as conversation_url:
        gateway = gateway_settings(
            stt_urls=stt_url,
            tts_urls=tts_url,
            conversation_urls=conversation_url,
            events_url=mqtt[1],
            stt_timeout=TIMEOUT,
            tts_timeout=TIMEOUT,
        )
        with serve(create_app(gateway)) as url:
            yield url


def converse(
    gateway: str, *, text: str | None = None, speech: bytes | None = None, cancel: bool = False
) -> tuple[Chat, str]:
    """One turn on the chat socket, typed or spoken (with ``cancel``: cancelled at its tool call); the
    events and the conversation's id."""

    async def scenario() -> tuple[Chat, str]:
        async with websockets.connect(ws_url(gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation", "format": "wav", "voice": "af_heart"})
            conversation = (await chat.until("conversation.started"))["conversation_id"]
            if speech is not None:
                await chat.speak(speech)
            else:
                await chat.send({"type": "text", "text": text})
            if cancel:
                await chat.until("tool.call")
                await chat.send({"type": "cancel"})
                await chat.until("reply.cancelled")
            else:
                await until_ignoring_errors(chat, "reply.done")
            return chat, conversation

    return asyncio.run(scenario())


async def until_ignoring_errors(chat: Chat, kind: str) -> dict[str, Any]:
    """Events until ``kind``, keeping ``error`` events (a failed tool sends one and the reply goes on)."""
    while True:
        try:
            return await chat.until(kind)
        except AssertionError:
            continue


def on_topic(sub: Subscriber, topic: str) -> list[str]:
    return [m.payload.decode() for m in sub.on(topic)]


def test_a_spoken_request_turns_on_the_kitchen_light(gateway: str, mqtt: tuple[Mosquitto, str], stt_url: str) -> None:
    with subscriber(mqtt[0].port, ["home/#", f"{PREFIX}/tool_calls"]) as sub:
        chat, conversation = converse(gateway, speech=pcm16("Turn on the kitchen lights.") + SILENCE)
        sub.wait_for(KITCHEN)
        event = sub.wait_for(f"{PREFIX}/tool_calls").json()
        time.sleep(0.3)  # anything published twice would be here by now
        assert on_topic(sub, KITCHEN) == ["ON"]
    (call,) = chat.of("tool.call")
    (result,) = chat.of("tool.result")
    assert (call["name"], call["status"], json.loads(call["arguments"])) == (
        "set_light",
        "running",
        {"topic": KITCHEN, "payload": "ON"},
    )
    assert (result["status"], result["result"]) == ("ok", f"published to {KITCHEN}")
    assert (event["type"], event["tool"], event["status"], event["call_id"]) == (
        "tool_call",
        "set_light",
        "ok",
        call["call_id"],
    )
    assert event["arguments"] == {"topic": KITCHEN, "payload": "ON"}
    assert event["conversation_id"] == conversation
    done = chat.of("reply.done")[0]
    assert done["text"] == f"Let me do that. Done: published to {KITCHEN}."
    heard = words(transcribe(stt_url, joined_wav(chat.of("reply.audio"))))
    assert "done" in heard


def test_a_topic_the_bridge_does_not_allow_is_refused_with_an_error_event(
    gateway: str, mqtt: tuple[Mosquitto, str]
) -> None:
    """The tools file names the garage topic; the bridge's own allow-list does not: nothing is published."""
    with subscriber(mqtt[0].port, ["home/#"]) as sub:
        chat, _ = converse(gateway, text="Turn on the garage light.")
        time.sleep(0.3)
        assert sub.messages == []
    (result,) = chat.of("tool.result")
    assert (result["status"], result["error_code"]) == ("refused", "topic_not_allowed")
    (error,) = chat.of("error")
    assert error["error"]["code"] == "topic_not_allowed"
    assert error["error"]["details"] == {"call_id": result["call_id"], "tool": "set_light", "status": "refused"}
    assert chat.of("reply.done")[0]["text"] == "Let me do that. Sorry, I could not do that."
    assert chat.of("reply.audio")


def test_a_slow_tool_times_out_and_the_user_hears_an_apology(gateway: str, stt_url: str) -> None:
    chat, _ = converse(gateway, text="How is the weather?")
    (result,) = chat.of("tool.result")
    assert (result["status"], result["error_code"]) == ("timeout", "tool_timeout")
    assert chat.of("error")[0]["error"]["code"] == "tool_timeout"
    assert "sorry" in words(transcribe(stt_url, joined_wav(chat.of("reply.audio"))))


def test_cancel_during_a_tool_call_cancels_it(gateway: str, slow_tool: tuple[SlowTool, str]) -> None:
    tool = slow_tool[0]
    dropped = tool.dropped
    chat, conversation = converse(gateway, text="Weather in Paris, please.", cancel=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = httpx.get(f"{gateway}/api/conversations/{conversation}", timeout=10).json()["messages"]
        calls = messages[-1]["tool_calls"]
        if calls and calls[0]["status"] != "running" and tool.dropped > dropped:
            break
        time.sleep(0.05)
    assert calls[0]["status"] == "cancelled"
    assert messages[-1]["status"] == "interrupted"
    assert tool.dropped == dropped + 1  # its request was dropped, not left running
    assert not chat.of("tool.result")
