"""Conversation sessions through the ``openai`` SDK: the live core hears, the voice loop (the conversation
service's echo responder, Kokoro) answers; barge-in, cancel and truncate."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.speech import REPO, kokoro_speech, words
from tests.gateway.conftest import SHORT
from tests.realtime.conftest import API_KEY
from tests.realtime.kit import client, of, spoken_turn, until, with_silence
from voicestack_common.encode import encode_audio, wav_header

pytestmark = [pytest.mark.engine, pytest.mark.slow]

EXAMPLE = REPO / "docs" / "examples" / "realtime_turn.py"

SESSION = {
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
}
REPLY_ORDER = [
    "response.created",
    "rate_limits.updated",
    "response.output_item.added",
    "conversation.item.created",
    "response.content_part.added",
    "response.audio_transcript.delta",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


def _first_positions(kinds: list[str], wanted: list[str]) -> list[int]:
    return [kinds.index(kind) for kind in wanted]


def test_spoken_turn_with_server_vad(realtime_url: str) -> None:
    """Speech in, server VAD ends the turn, the reply's audio transcribes back to its text."""
    audio = with_silence(kokoro_speech(SHORT)).to_pcm16()

    events = asyncio.run(spoken_turn(realtime_url, API_KEY, SESSION, audio))
    kinds = [e["type"] for e in events]
    committed = kinds.index("input_audio_buffer.committed")
    created = kinds.index("response.created")
    assert committed < created
    positions = _first_positions(kinds[created:], REPLY_ORDER)
    assert positions == sorted(positions), kinds
    assert "conversation.item.input_audio_transcription.completed" not in kinds  # not asked for
    done = of(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["output_tokens"] > 0
    transcript = of(events, "response.audio_transcript.done")[0]["transcript"]
    assert transcript == "".join(e["delta"] for e in of(events, "response.audio_transcript.delta"))
    # the echo responder restates what the live core heard
    assert len([w for w in words(SHORT) if w not in words(transcript)]) <= 1, transcript
    assert done["output"][0]["content"][0]["transcript"] == transcript
    reply = b"".join(base64.b64decode(e["delta"]) for e in of(events, "response.audio.delta"))
    wav = wav_header(24_000, len(reply)) + reply
    with httpx.Client(base_url=realtime_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
        answer = http.post("/api/voice/transcribe", files={"file": ("reply.wav", io.BytesIO(wav), "audio/wav")})
    answer.raise_for_status()
    expected, got = words(transcript), words(answer.json()["text"])
    assert len([w for w in expected if w not in got]) <= 1, (transcript, answer.json()["text"])


def test_cancelled_response_then_truncate(realtime_url: str) -> None:
    """A text turn; the client cancels after the first audio, then truncates what it played; the
    conversation keeps only what was heard."""
    question = "Please call me back tomorrow morning at nine. The meeting starts at noon, bring the blue folder."

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(model="voicestack") as connection:
            events = await until(connection, "session.created")
            await connection.session.update(session={**SESSION, "turn_detection": None})  # type: ignore[arg-type]
            await until(connection, "session.updated", into=events)
            await connection.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}
            )
            await until(connection, "conversation.item.created", into=events)
            await connection.response.create()
            await until(connection, "response.audio.delta", into=events, timeout=120)
            await connection.response.cancel(event_id="stop-it")
            await until(connection, "response.done", into=events)
            item_id = of(events, "response.output_item.added")[0]["item"]["id"]
            await connection.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=300)
            await until(connection, "conversation.item.truncated", into=events)
            await connection.response.cancel(event_id="nothing-left")
            await until(connection, "error", into=events)
            return events, of(events, "session.created")[0]["session"]["id"]

    events, session_id = asyncio.run(scenario())
    done = of(events, "response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    truncated = of(events, "conversation.item.truncated")[0]
    assert truncated["audio_end_ms"] == 300
    assert of(events, "error")[0]["error"]["event_id"] == "nothing-left"
    conversation = "conv_" + session_id.removeprefix("sess_")
    with httpx.Client(base_url=realtime_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        stored = http.get(f"/api/conversations/{conversation}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["interrupted"]
    assert len(words(stored[1]["text"])) < len(words(question))


def test_example_script_holds_a_spoken_turn(realtime_url: str, tmp_path: Path) -> None:
    """docs/examples/realtime_turn.py, the SDK and nothing else: a recorded question in, a spoken answer out."""
    question = tmp_path / "question.wav"
    question.write_bytes(encode_audio(with_silence(kokoro_speech(SHORT), tail=0.5), "wav"))
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(question)],
        env={**os.environ, "VOICESTACK_URL": realtime_url, "VOICESTACK_API_KEY": API_KEY},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "[completed]" in result.stdout, result.stdout
    assert len([w for w in words(SHORT) if w not in words(result.stdout)]) <= 1, result.stdout
    assert (tmp_path / "reply.wav").stat().st_size > 24_000
