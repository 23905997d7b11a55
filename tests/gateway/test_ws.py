"""``WS /api/voice/ws/chat`` against the real brokers: several requests in flight on one socket."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets

from devkit.speech import words
from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]


async def _chat(url: str, messages: list[dict[str, Any]], answers: int) -> list[dict[str, Any]]:
    async with websockets.connect(url, max_size=None) as ws:
        for message in messages:
            await ws.send(json.dumps(message))
        return [json.loads(await asyncio.wait_for(ws.recv(), 120)) for _ in range(answers)]


def test_several_requests_in_flight_answer_by_id(gateway_url: str, sentence: tuple[str, Pcm]) -> None:
    """The guide's JavaScript example, from a script: transcribe, synthesize and ping on one socket."""
    text, pcm = sentence
    audio = base64.b64encode(encode_audio(pcm, "wav")).decode()
    url = gateway_url.replace("http://", "ws://") + "/api/voice/ws/chat"
    answers = asyncio.run(
        _chat(
            url,
            [
                {"type": "transcribe", "audio_base64": audio, "language": "en", "id": "t1"},
                {
                    "type": "synthesize",
                    "text": "Hello, this is a test",
                    "voice": "jm_kumo",
                    "lang_code": "a",
                    "speed": 1.0,
                    "id": "s1",
                },
                {"type": "synthesize", "text": "Goodbye.", "voice": "jf_alpha", "id": "s2"},
                {"type": "ping", "id": "p1"},
            ],
            answers=4,
        )
    )
    assert answers[0] == {"type": "pong", "id": "p1"}  # answered at once, while the others run
    by_id = {a["id"]: a for a in answers}
    assert by_id["t1"]["type"] == "transcription"
    assert words(by_id["t1"]["text"]) == words(text)
    assert set(by_id["t1"]) >= {"text", "language", "confidence", "duration_seconds", "model"}
    for request_id, voice in (("s1", "jm_kumo"), ("s2", "jf_alpha")):
        audio_answer = by_id[request_id]
        assert audio_answer["type"] == "audio"
        assert audio_answer["voice"] == voice
        assert audio_answer["sample_rate"] == 24_000
        clip = decode_audio(base64.b64decode(audio_answer["audio_base64"]), 24_000)
        assert clip.duration == pytest.approx(audio_answer["duration_seconds"], abs=0.05)


def test_an_upstream_error_is_an_error_message_and_the_socket_stays_open(gateway_url: str) -> None:
    url = gateway_url.replace("http://", "ws://") + "/api/voice/ws/chat"
    answers = asyncio.run(
        _chat(
            url,
            [
                {"type": "synthesize", "text": "Hello.", "voice": "no_such_voice", "id": 41},
                {"type": "transcribe", "audio_base64": base64.b64encode(b"not audio at all" * 20).decode(), "id": 42},
            ],
            answers=2,
        )
    )
    by_id = {a["id"]: a for a in answers}
    assert by_id[41]["type"] == "error"
    assert by_id[41]["error"]["code"] == "unknown_voice"
    assert by_id[42]["error"]["code"] == "unsupported_audio"
