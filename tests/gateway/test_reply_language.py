"""The chat loop's reply voice follows the language the user spoke (issue 20), through the real gateway,
TTS broker, STT broker and conversation service (echo responder)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from conversation.app import create_app as create_conversation
from devkit.servers import serve
from devkit.speech import espeak_speech
from gateway.app import create_app
from tests.conversation.conftest import conversation_settings
from tests.gateway.conftest import gateway_settings
from voicestack_common.audio import decode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TIMEOUT = 180
CHUNK = 3200  # 100 ms of 16 kHz PCM16
SPANISH = "Buenos días. Me gustaría reservar una mesa para dos personas esta noche."


@pytest.fixture(scope="module")
def chat_gateway(stt_url: str, tts_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway in front of the real brokers and a conversation service that echoes."""
    database: Path = tmp_path_factory.mktemp("conversations") / "store.sqlite3"
    with serve(create_conversation(conversation_settings(f"sqlite:///{database}"))) as conversation_url:
        settings = gateway_settings(
            stt_urls=stt_url,
            tts_urls=tts_url,
            conversation_urls=conversation_url,
            stt_timeout=TIMEOUT,
            tts_timeout=TIMEOUT,
            health_timeout=5.0,
        )
        with serve(create_app(settings)) as url:
            yield url


def voice_codes(base: str) -> dict[str, str]:
    """Each voice's Kokoro language code, as the TTS broker says it (through the gateway)."""
    answer = httpx.get(f"{base}/api/voice/voices").json()
    return {d["id"]: d["lang_code"] for d in answer.get("details", []) if d.get("available", True)}


async def converse(base: str, start: dict[str, Any], *, text: str | None = None, audio: bytes = b"") -> list[Any]:
    """One turn of the voice loop: its events up to ``reply.done``."""
    url = base.replace("http://", "ws://") + "/api/voice/ws/chat"
    seen: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start_conversation", **start}))
        if text is not None:
            await ws.send(json.dumps({"type": "text", "text": text}))
        for offset in range(0, len(audio), CHUNK):
            await ws.send(audio[offset : offset + CHUNK])
        deadline = time.monotonic() + TIMEOUT
        while not seen or seen[-1]["type"] != "reply.done":
            event = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            assert event["type"] != "error", event
            seen.append(event)
    return seen


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


@pytest.mark.parametrize(("language", "code"), [("fr", "f"), ("es", "e")])
def test_the_session_s_language_picks_a_voice_of_it(chat_gateway: str, language: str, code: str) -> None:
    codes = voice_codes(chat_gateway)
    if code not in codes.values():
        pytest.skip(f"the TTS broker offers no voice of {language!r} here")
    events = asyncio.run(converse(chat_gateway, {"language": language}, text="Bonjour, merci."))
    pieces, done = of(events, "reply.audio"), of(events, "reply.done")[0]
    assert pieces
    for piece in pieces:
        assert piece["lang_code"] == code
        assert codes[piece["voice"]] == code
    assert done["lang_code"] == code
    assert codes[done["voice"]] == code


def test_a_fixed_voice_or_an_unspoken_language_keeps_the_voice(chat_gateway: str) -> None:
    default = httpx.get(f"{chat_gateway}/api/voice/voices").json()["default_voice"]
    fixed = asyncio.run(converse(chat_gateway, {"language": "fr", "voice": "jf_alpha"}, text="Bonjour."))
    assert {p["voice"] for p in of(fixed, "reply.audio")} == {"jf_alpha"}
    # the chosen voice reads the reply as the language spoken (French, where Kokoro speaks it here)
    french = "f" in voice_codes(chat_gateway).values()
    assert of(fixed, "reply.done")[0]["lang_code"] == ("f" if french else None)
    code = asyncio.run(converse(chat_gateway, {"language": "fr", "lang_code": "a"}, text="Bonjour."))
    assert {p["lang_code"] for p in of(code, "reply.audio")} == {"a"}  # a fixed lang_code holds
    german = asyncio.run(converse(chat_gateway, {"language": "de"}, text="Guten Tag."))
    assert {p["voice"] for p in of(german, "reply.audio")} == {default}
    assert of(german, "reply.done")[0]["lang_code"] is None


def test_spanish_speech_detected_by_base_gets_a_spanish_voice(chat_gateway: str) -> None:
    codes = voice_codes(chat_gateway)
    if "e" not in codes.values():
        pytest.skip("the TTS broker offers no Spanish voice here")
    speech = decode_audio(espeak_speech(SPANISH, voice="es", speed=140), sample_rate=16_000).to_pcm16()
    silence = bytes(2 * 16_000)
    # no language: the multilingual model detects it; no voice: the reply follows it
    events = asyncio.run(converse(chat_gateway, {"model": "base"}, audio=silence + speech + silence * 2))
    final = of(events, "final")[0]
    assert final["language"] == "es"
    assert "base" in str(final.get("model"))
    assert {"mesa", "personas"} & set(final["text"].lower().replace(".", " ").replace(",", " ").split())
    pieces = of(events, "reply.audio")
    assert pieces
    assert {codes[p["voice"]] for p in pieces} == {"e"}
    assert {p["lang_code"] for p in pieces} == {"e"}


def test_models_list_the_responders_beside_the_brokers_models(chat_gateway: str) -> None:
    responders = httpx.get(f"{chat_gateway}/api/voice/responders").json()
    cards = {card["id"]: card for card in httpx.get(f"{chat_gateway}/v1/models").json()["data"]}
    llm = {name: card for name, card in cards.items() if card["kind"] == "llm"}
    assert set(llm) == set(responders["allowed"])
    assert [name for name, card in llm.items() if card["default"]] == [responders["default"]]
    assert {card["kind"] for card in cards.values()} == {"stt", "tts", "llm"}
