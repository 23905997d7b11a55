"""Conversations through the gateway with the real STT and TTS brokers and the real conversation service:
the voice loop (speech in, spoken reply out, barge-in, cancel, reconnect), the seed flows and bad input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from conversation.app import create_app as create_conversation
from devkit.servers import serve
from devkit.speech import kokoro_speech, words
from gateway.app import create_app
from tests.conversation.conftest import conversation_settings
from tests.gateway.conftest import EventReceiver, gateway_settings, wait_for
from tests.live.client import turn_checks
from voicestack_common.audio import Pcm, decode_audio, resample
from voicestack_common.encode import encode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]

QUESTION = "What is the weather like in Paris today?"
LATER = "Please tell me a story."
CHUNK = 3200  # 100 ms of 16 kHz PCM16
TIMEOUT = 180


@pytest.fixture(scope="module")
def conversation_url(tmp_path_factory: pytest.TempPathFactory, openai_server: str) -> Iterator[str]:
    """The conversation service: echo by default, the OpenAI-style server and the local model allowed."""
    database = tmp_path_factory.mktemp("conversations") / "store.sqlite3"
    settings = conversation_settings(
        f"sqlite:///{database}",
        openai_base_url=openai_server,
        allowed_responders=["echo", "openai", "local"],
        local_threads=1,
        allowed_options=["temperature"],
    )
    with serve(create_conversation(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def events() -> Iterator[tuple[EventReceiver, str]]:
    """A stand-in MQTT bridge that keeps the events it gets."""
    receiver = EventReceiver()
    with serve(receiver.app()) as url:
        yield receiver, url


@pytest.fixture(scope="module")
def chat_gateway(stt_url: str, tts_url: str, conversation_url: str, events: tuple[EventReceiver, str]) -> Iterator[str]:
    """The gateway in front of the real brokers and the conversation service."""
    # A loaded CI machine may keep Kokoro busy for a while: generous timeouts, so only a real fault fails.
    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        conversation_urls=conversation_url,
        events_url=events[1],
        stt_timeout=TIMEOUT,
        tts_timeout=TIMEOUT,
        health_timeout=5.0,
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def other_gateway(stt_url: str, tts_url: str, conversation_url: str) -> Iterator[str]:
    """A second gateway replica in front of the same brokers and conversation service."""
    settings = gateway_settings(
        stt_urls=stt_url, tts_urls=tts_url, conversation_urls=conversation_url, tts_timeout=TIMEOUT, stt_timeout=TIMEOUT
    )
    with serve(create_app(settings)) as url:
        yield url


def pcm16(text: str) -> bytes:
    """``text`` spoken by Kokoro, as 16 kHz PCM16 mono."""
    return resample(kokoro_speech(text), 16_000).to_pcm16()


SILENCE = bytes(2 * 16_000)  # one second


class Chat:
    """A WebSocket client of the voice loop that keeps every event it got."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def speak(self, audio: bytes, *, pause: float = 0.0) -> None:
        """Stream audio in 100 ms frames (faster than real time unless ``pause``)."""
        for start in range(0, len(audio), CHUNK):
            await self.ws.send(audio[start : start + CHUNK])
            if pause:
                await asyncio.sleep(pause)

    async def until(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Events until one of ``kind`` (returned)."""
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic())))
            self.seen.append(event)
            if event["type"] == kind:
                return event
            if event["type"] == "error" and kind != "error":
                raise AssertionError(f"error while waiting for {kind}: {event}")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == kind]


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/voice/ws/chat"


def transcribe(stt_url: str, audio: bytes) -> str:
    answer = httpx.post(f"{stt_url}/v1/transcribe", files={"file": ("a.wav", audio, "audio/wav")}, timeout=TIMEOUT)
    answer.raise_for_status()
    return str(answer.json()["text"])


def joined_wav(pieces: list[dict[str, Any]]) -> bytes:
    """The reply's audio pieces (WAV files) as one WAV."""
    decoded = [decode_audio(base64.b64decode(p["audio_base64"]), sample_rate=24_000) for p in pieces]
    return encode_audio(Pcm(np.concatenate([p.samples for p in decoded]), 24_000), "wav")


def test_spoken_question_gets_a_spoken_answer(chat_gateway: str, stt_url: str) -> None:
    checks_before = turn_checks(stt_url)

    async def scenario() -> Chat:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation", "user_id": "u1", "voice": "jf_alpha", "language": "en"})
            started = await chat.until("conversation.started")
            assert started["messages"] == 0
            # in real time, as a microphone would: the live core sends partials while the question goes on
            await chat.speak(SILENCE + pcm16(QUESTION), pause=0.1)
            # the utterance stays open until the core hears the silence, so its partial arrives first
            await chat.until("partial")
            await chat.speak(SILENCE, pause=0.1)
            await chat.until("reply.done")
            return chat

    chat = asyncio.run(scenario())
    kinds = [e["type"] for e in chat.seen]
    assert kinds.index("speech_started") < kinds.index("partial") < kinds.index("speech_stopped")
    assert kinds.index("speech_stopped") < kinds.index("final")
    assert kinds.index("final") < kinds.index("reply.text.delta") < kinds.index("reply.audio")
    final = chat.of("final")[0]
    assert words(final["text"]) == words(QUESTION)
    partial = chat.of("partial")[0]
    assert partial["utterance_id"] == final["utterance_id"]
    assert partial["text"].strip()
    assert final["transcribe_ms"] >= 0
    done = chat.of("reply.done")[0]
    reply = "".join(e["text"] for e in chat.of("reply.text.delta"))
    assert reply == done["text"] == f"You said: {final['text'].strip()}"
    pieces = chat.of("reply.audio")
    assert [p["index"] for p in pieces] == list(range(len(pieces)))
    assert " ".join(p["text"] for p in pieces) == reply
    # the reply's audio says the reply's words
    assert words(transcribe(stt_url, joined_wav(pieces))) == words(reply)
    assert done["timings"]["first_audio_ms"] >= done["timings"]["first_text_ms"]
    assert "speech_end_to_first_audio_ms" in done["timings"]
    # the turn was ended by the STT broker's end-of-turn model (the voice chat's default)
    assert turn_checks(stt_url) > checks_before


def test_a_spoken_question_gets_a_spoken_answer_from_the_local_model(chat_gateway: str, stt_url: str) -> None:
    """The bundled SmolLM2 on llama.cpp answers what it heard, and the answer is spoken."""

    async def scenario() -> Chat:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation", "language": "en", "responder": {"name": "local"}})
            await chat.until("conversation.started")
            await chat.speak(SILENCE + pcm16("What is the capital of France?") + SILENCE, pause=0.05)
            await chat.until("reply.done")
            return chat

    chat = asyncio.run(scenario())
    assert words(chat.of("final")[0]["text"]) == words("What is the capital of France?")
    reply = chat.of("reply.done")[0]["text"]
    assert "Paris" in reply
    assert "paris" in words(transcribe(stt_url, joined_wav(chat.of("reply.audio"))))


def test_barge_in_cuts_the_reply_to_what_was_heard(
    chat_gateway: str, openai_server: str, events: tuple[EventReceiver, str]
) -> None:
    async def scenario() -> tuple[Chat, str]:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send(
                {"type": "start_conversation", "responder": {"name": "openai"}, "format": "wav", "voice": "jf_alpha"}
            )
            conversation = (await chat.until("conversation.started"))["conversation_id"]
            await chat.send({"type": "text", "text": "Tell me something long please."})
            first = await chat.until("reply.audio")
            # the client has played 60 % of the first piece (a few words: a share, not a fixed second) when
            # the user speaks
            await chat.send({"type": "playback", "position": 0.6 * first["duration_seconds"]})
            await chat.speak(pcm16(LATER) + SILENCE)
            cancelled = await chat.until("reply.cancelled")
            assert cancelled["message_id"] == first["message_id"]
            await chat.until("reply.done")  # the answer to what the user said meanwhile
            return chat, conversation

    chat, conversation = asyncio.run(scenario())
    cancelled = chat.of("reply.cancelled")[0]
    assert cancelled["reason"] == "barge_in"
    heard = cancelled["heard_text"]
    first_piece = chat.of("reply.audio")[0]
    assert heard
    assert first_piece["text"].startswith(heard)
    assert len(heard) < len(first_piece["text"])
    stored = httpx.get(f"{chat_gateway}/api/conversations/{conversation}", timeout=30).json()["messages"]
    interrupted = next(m for m in stored if m["id"] == cancelled["message_id"])
    assert interrupted["interrupted"] is True
    assert interrupted["text"] == heard
    assert interrupted["status"] == "interrupted"
    assert len(interrupted["generated_text"]) > len(heard)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert words(stored[2]["text"]) == words(LATER)
    receiver = events[0]
    wait_for(lambda: any(e.type == "reply" and e.interrupted for e in receiver.events))
    reply_event = next(e for e in receiver.events if e.type == "reply" and e.interrupted)
    assert reply_event.conversation_id == conversation
    assert reply_event.text == heard


def test_cancel_keeps_what_was_sent_and_reconnect_carries_on(chat_gateway: str, openai_server: str) -> None:
    async def first_visit() -> tuple[Chat, str]:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send(
                {
                    "type": "start_conversation",
                    "conversation_id": "kitchen-1",
                    "create": True,
                    "responder": {"name": "openai"},
                }
            )
            await chat.until("conversation.started")
            await chat.send({"type": "text", "text": "Give me a long answer."})
            await chat.until("reply.audio")
            await chat.send({"type": "cancel"})
            await chat.until("reply.cancelled")
            return chat, "kitchen-1"

    async def second_visit() -> Chat:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send(
                {"type": "start_conversation", "conversation_id": "kitchen-1", "responder": {"name": "openai"}}
            )
            started = await chat.until("conversation.started")
            assert started["messages"] == 2
            await chat.send({"type": "text", "text": "And now a short one."})
            await chat.until("reply.done")
            return chat

    chat, conversation = asyncio.run(first_visit())
    cancelled = chat.of("reply.cancelled")[0]
    assert cancelled["reason"] == "cancel"
    sent = " ".join(p["text"] for p in chat.of("reply.audio") if p["message_id"] == cancelled["message_id"])
    assert cancelled["heard_text"] == sent  # no playback reported: what was sent
    asyncio.run(second_visit())
    stored = httpx.get(f"{chat_gateway}/api/conversations/{conversation}", timeout=30).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1]["text"] == sent
    # the model got the history, the interrupted reply as it was heard
    last = httpx.get(openai_server.removesuffix("/v1") + "/requests", timeout=10).json()[-1]["body"]["messages"]
    assert [m["content"] for m in last[1:]] == ["Give me a long answer.", sent, "And now a short one."]


def test_seed002_compat_sends_server_response(chat_gateway: str, stt_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation", "compat": "seed002", "format": "mp3"})
            await chat.until("conversation.started")
            await chat.send({"type": "text", "text": "Open the garage door."})
            return await chat.until("server_response")

    answer = asyncio.run(scenario())
    assert answer["message"] == "You said: Open the garage door."
    mp3 = base64.b64decode(answer["audio"])
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF
    wav = encode_audio(resample(decode_audio(mp3, sample_rate=16_000), 16_000), "wav")
    assert words(transcribe(stt_url, wav)) == words(answer["message"])


def test_voice_message_seed003(chat_gateway: str, stt_url: str) -> None:
    audio = encode_audio(kokoro_speech(QUESTION), "wav")
    answer = httpx.post(
        f"{chat_gateway}/api/messages/voice",
        params={"conversation_id": "guide-1", "user_id": "u42", "language": "en", "create": "true"},
        files={"file": ("q.wav", audio, "audio/wav")},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message_type"] == "voice"
    assert words(body["text"]) == words(QUESTION)
    assert body["metadata"]["transcription"]["language"] == "en"
    assert body["assistant_response"]["text"] == f"You said: {body['text'].strip()}"
    spoken = base64.b64decode(body["assistant_audio"])
    assert words(transcribe(stt_url, spoken)) == words(body["assistant_response"]["text"])
    missing = httpx.post(
        f"{chat_gateway}/api/messages/voice",
        params={"conversation_id": "nobody-knows", "user_id": "u42"},
        files={"file": ("q.wav", audio, "audio/wav")},
        timeout=TIMEOUT,
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "conversation_not_found"


def test_upload_then_audio_seed000(chat_gateway: str, other_gateway: str, stt_url: str, tmp_path: Path) -> None:
    base = chat_gateway
    assert httpx.get(f"{base}/audio", params={"session": "car"}, timeout=10).status_code == 404
    audio = encode_audio(kokoro_speech(QUESTION), "wav")
    accepted = httpx.post(f"{base}/upload", params={"session": "car"}, content=audio, timeout=TIMEOUT)
    assert accepted.status_code == 202, accepted.text
    assert httpx.get(f"{base}/audio", params={"session": "other"}, timeout=10).status_code == 404
    pieces = []
    while True:
        # the pending audio is in the conversation service: the other gateway replica delivers it
        answer = httpx.get(f"{other_gateway}/audio", params={"session": "car"}, timeout=60)
        if answer.status_code == 204:
            break
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "audio/wav"
        pieces.append(base64.b64decode(answer.headers["X-Reply-Text"]).decode())
        (tmp_path / f"{len(pieces)}.wav").write_bytes(answer.content)
    assert words(" ".join(pieces)) == words(f"You said: {QUESTION}")
    # delivered audio is gone; no turn is pending any more
    assert httpx.get(f"{base}/audio", params={"session": "car"}, timeout=10).status_code == 404
    heard = transcribe(stt_url, (tmp_path / "1.wav").read_bytes())
    assert words(heard) == words(pieces[0])
    # a multipart upload works too
    again = httpx.post(f"{base}/upload", files={"file": ("a.wav", audio, "audio/wav")}, timeout=TIMEOUT)
    assert again.status_code == 202
    assert httpx.get(f"{base}/audio", timeout=60).status_code == 200
    # the device uploads again through the other replica: its new reply replaces the old one everywhere
    first = httpx.post(f"{base}/upload", params={"session": "bus"}, content=audio, timeout=TIMEOUT)
    assert first.status_code == 202
    later = encode_audio(kokoro_speech(LATER), "wav")
    second = httpx.post(f"{other_gateway}/upload", params={"session": "bus"}, content=later, timeout=TIMEOUT)
    assert second.status_code == 202
    replaced = []
    while (answer := httpx.get(f"{base}/audio", params={"session": "bus"}, timeout=60)).status_code == 200:
        replaced.append(base64.b64decode(answer.headers["X-Reply-Text"]).decode())
    assert answer.status_code == 204
    assert words(" ".join(replaced)) == words(f"You said: {second.json()['transcript'].strip()}")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "start_conversation", "responder": {"name": "webhook"}}, "responder_not_allowed"),
        ({"type": "start_conversation", "responder": {"options": {"system_prompt": "x"}}}, "option_not_allowed"),
        ({"type": "start_conversation", "conversation_id": "never-made"}, "conversation_not_found"),
        ({"type": "start_conversation", "format": "midi"}, "invalid_request"),
        ({"type": "start_conversation", "conversation_id": "../etc"}, "invalid_request"),
        ({"type": "commit"}, "no_conversation"),
        ({"type": "playback", "position": 1}, "no_conversation"),
    ],
)
def test_bad_chat_messages(chat_gateway: str, message: dict[str, Any], code: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await chat.send(message)
            error = await chat.until("error")
            await chat.send({"type": "ping"})
            await chat.until("pong")  # the socket stays usable
            return error

    assert asyncio.run(scenario())["error"]["code"] == code


def test_bad_audio_and_failing_responder(chat_gateway: str, openai_server: str, conversation_url: str) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(chat_gateway), max_size=None) as ws:
            chat = Chat(ws)
            await ws.send(b"\x00\x01")
            errors = [await chat.until("error")]
            await chat.send({"type": "start_conversation", "responder": {"name": "openai"}})
            conversation = (await chat.until("conversation.started"))["conversation_id"]
            await ws.send(b"\x00\x01\x02")
            errors.append(await chat.until("error"))
            await chat.send({"type": "playback", "position": "soon"})
            errors.append(await chat.until("error"))
            await chat.send({"type": "text", "text": "please fail now"})
            errors.append(await chat.until("error"))
            errors.append({"conversation": conversation})
            return errors

    found = asyncio.run(scenario())
    assert [e["error"]["code"] for e in found[:4]] == [
        "invalid_message",
        "unsupported_audio",
        "invalid_request",
        "responder_unavailable",
    ]
    stored = httpx.get(f"{chat_gateway}/api/conversations/{found[4]['conversation']}", timeout=30).json()["messages"]
    assert stored[0]["text"] == "please fail now"
    assert stored[1]["status"] == "error"


def test_seed_flows_bad_input(chat_gateway: str) -> None:
    not_audio = httpx.post(f"{chat_gateway}/upload", content=b"this is not audio at all", timeout=60)
    assert not_audio.status_code in (400, 415)
    assert not_audio.json()["error"]["code"] in ("unsupported_audio", "invalid_audio")
    empty = httpx.post(f"{chat_gateway}/upload", content=b"", timeout=60)
    assert empty.json()["error"]["code"] == "empty_body"
    bad_session = httpx.get(f"{chat_gateway}/audio", params={"session": "a b"}, timeout=10)
    assert bad_session.status_code == 422
    assert httpx.get(f"{chat_gateway}/api/conversations/bad%20id", timeout=10).status_code == 422


def test_keys_keep_conversations_apart(stt_url: str, tts_url: str, conversation_url: str) -> None:
    settings = gateway_settings(
        stt_urls=stt_url, tts_urls=tts_url, conversation_urls=conversation_url, api_keys="key-one,key-two"
    )
    one, two = {"X-API-Key": "key-one"}, {"Authorization": "Bearer key-two"}
    with serve(create_app(settings)) as base:
        assert httpx.get(f"{base}/api/conversations", timeout=10).status_code == 401
        assert httpx.get(f"{base}/audio", timeout=10).status_code == 401
        created = httpx.post(f"{base}/api/conversations", json={"title": "mine"}, headers=one, timeout=10)
        assert created.status_code == 201
        cid = created.json()["id"]
        assert httpx.get(f"{base}/api/conversations/{cid}", headers=one, timeout=10).status_code == 200
        other = httpx.get(f"{base}/api/conversations/{cid}", headers=two, timeout=10)
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "conversation_not_found"
        assert httpx.delete(f"{base}/api/conversations/{cid}", headers=two, timeout=10).status_code == 404
        assert httpx.get(f"{base}/api/conversations", headers=two, timeout=10).json()["total"] == 0
        assert httpx.delete(f"{base}/api/conversations/{cid}", headers=one, timeout=10).status_code == 204


def test_each_live_session_of_the_loop_is_a_transcription_against_the_limit(
    stt_url: str, tts_url: str, conversation_url: str
) -> None:
    """The loop's recognition counts toward GATEWAY_TRANSCRIBE_RATE_LIMIT like every other transcription."""
    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        conversation_urls=conversation_url,
        transcribe_rate_limit=1,
        rate_limit_burst=1,
    )

    async def scenario(base: str) -> tuple[list[str], dict[str, Any]]:
        first_types: list[str] = []
        async with websockets.connect(ws_url(base), open_timeout=TIMEOUT) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation"})
            await chat.until("conversation.started")
            await chat.speak(SILENCE)  # opens the core session: the minute's one transcription
            await chat.send({"type": "ping"})
            await chat.until("pong")
            first_types = [e["type"] for e in chat.seen]
        async with websockets.connect(ws_url(base), open_timeout=TIMEOUT) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation"})
            await chat.until("conversation.started")
            await chat.speak(SILENCE[:3200])
            return first_types, await chat.until("error")

    with serve(create_app(settings)) as base:
        first, refused = asyncio.run(scenario(base))
    assert "error" not in first
    assert refused["error"]["code"] == "rate_limited"


def test_the_loop_s_live_session_counts_among_the_caller_s_live_sessions(
    stt_url: str, tts_url: str, conversation_url: str
) -> None:
    """GATEWAY_LIVE_MAX_SESSIONS_PER_KEY covers the chat loop's core session as well as
    /api/voice/ws/transcribe, and a closed chat gives its slot back."""
    settings = gateway_settings(
        stt_urls=stt_url, tts_urls=tts_url, conversation_urls=conversation_url, live_max_sessions_per_key=1
    )
    start = json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000})

    async def transcribe_session(base: str) -> dict[str, Any]:
        url = base.replace("http://", "ws://") + "/api/voice/ws/transcribe"
        async with websockets.connect(url, open_timeout=TIMEOUT) as ws:
            # a refused session is closed at once, maybe before ``start`` goes out; its error is still read
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(start)
            return dict(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))

    async def scenario(base: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with websockets.connect(ws_url(base), open_timeout=TIMEOUT) as ws:
            chat = Chat(ws)
            await chat.send({"type": "start_conversation"})
            await chat.until("conversation.started")
            await chat.speak(SILENCE)  # opens the core session: the caller's one live session
            await chat.send({"type": "ping"})
            await chat.until("pong")
            assert not chat.of("error")
            refused = await transcribe_session(base)
            async with websockets.connect(ws_url(base), open_timeout=TIMEOUT) as other:
                second = Chat(other)
                await second.send({"type": "start_conversation"})
                await second.until("conversation.started")
                await second.speak(SILENCE[:3200])
                chat_refused = await second.until("error")
        for _ in range(150):  # until the server has seen the first chat close (at most ~30 s)
            after = await transcribe_session(base)
            if after["type"] == "ready":
                break
            await asyncio.sleep(0.2)
        return refused, chat_refused, after

    with serve(create_app(settings)) as base:
        refused, chat_refused, after = asyncio.run(scenario(base))
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "too_many_sessions"
    assert chat_refused["error"]["code"] == "too_many_sessions"
    assert after["type"] == "ready"


def test_documented_client_script(chat_gateway: str, tmp_path: Path) -> None:
    """docs/examples/voice_chat.py as a user runs it: a question, then an interruption while the answer plays."""
    import subprocess
    import sys

    from devkit.speech import REPO

    question, stop = tmp_path / "question.wav", tmp_path / "stop.wav"
    question.write_bytes(encode_audio(kokoro_speech(QUESTION), "wav"))
    stop.write_bytes(encode_audio(kokoro_speech(LATER), "wav"))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "docs" / "examples" / "voice_chat.py"),
            str(question),
            "--interrupt",
            str(stop),
            "--interrupt-after",
            "0.5",
            "--url",
            ws_url(chat_gateway),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("you: ") == 2
    assert "[interrupted; heard: " in result.stdout
    assert sorted(tmp_path.glob("reply-*.wav"))
