"""Transcription-only Realtime sessions through the ``openai`` SDK, on whisper.cpp via the live session core."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from devkit.speech import kokoro_speech, words
from gateway.realtime import codecs
from tests.gateway.conftest import SHORT
from tests.live.client import turn_checks
from tests.realtime.conftest import API_KEY
from tests.realtime.kit import client, of, stream, until, with_silence

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TRANSCRIPTION = {"model": "whisper-1", "language": "en"}


def _heard(transcript: str) -> None:
    expected, got = words(SHORT), words(transcript)
    assert len([w for w in expected if w not in got]) <= 1, transcript


@pytest.mark.parametrize(
    "turn_detection",
    [
        {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
        # the live core's turn model ends the turn: the 1.5 s tail is under the broker's 2 s cap for a turn
        # it hears as unfinished, so a speech_stopped here is the model's "finished"
        {"type": "semantic_vad", "eagerness": "auto"},
    ],
    ids=["server_vad", "semantic_vad"],
)
def test_turn_detection_transcribes_a_spoken_sentence(
    realtime_url: str, stt_url: str, turn_detection: dict[str, Any]
) -> None:
    """pcm16 at 24 kHz, server VAD: speech_started → speech_stopped → committed → item → deltas → completed."""
    audio = with_silence(kokoro_speech(SHORT)).to_pcm16()
    checks_before = turn_checks(stt_url)

    async def scenario() -> list[dict[str, Any]]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(
            model="whisper-1", extra_query={"intent": "transcription"}
        ) as connection:
            events = await until(connection, "session.created")
            assert events[0]["session"]["modalities"] == ["text"]
            await connection.transcription_session.update(
                session={
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": TRANSCRIPTION,
                    "turn_detection": turn_detection,
                }
            )
            updated = await until(connection, "transcription_session.updated", into=events)
            assert updated[-1]["session"]["turn_detection"]["type"] == turn_detection["type"]
            await stream(connection, audio, 4800, 0.1)  # 100 ms chunks in real time
            return await until(connection, "conversation.item.input_audio_transcription.completed", into=events)

    events = asyncio.run(scenario())
    kinds = [e["type"] for e in events]
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert [k for k in kinds if k in order] == order, kinds
    started, stopped = (
        of(events, "input_audio_buffer.speech_started")[0],
        of(events, "input_audio_buffer.speech_stopped")[0],
    )
    item_id = started["item_id"]
    assert stopped["item_id"] == item_id == of(events, "input_audio_buffer.committed")[0]["item_id"]
    # the speech lies between 0.5 s and the start of the 1.5 s tail
    assert 0 <= started["audio_start_ms"] <= 700 < stopped["audio_end_ms"] <= len(audio) // 48
    item = of(events, "conversation.item.created")[0]["item"]
    assert item["id"] == item_id
    assert item["role"] == "user"
    assert item["content"][0]["type"] == "input_audio"
    completed = of(events, "conversation.item.input_audio_transcription.completed")[0]
    _heard(completed["transcript"])
    deltas = "".join(e["delta"] for e in of(events, "conversation.item.input_audio_transcription.delta"))
    assert completed["transcript"].startswith(deltas.strip()[:1])
    assert deltas == completed["transcript"]
    # semantic_vad asked the STT broker's turn model; server_vad did not
    assert (turn_checks(stt_url) > checks_before) is (turn_detection["type"] == "semantic_vad")


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_manual_commit_in_g711(realtime_url: str, fmt: codecs.RealtimeFormat) -> None:
    """8 kHz G.711 with turn detection off: nothing happens until the client commits."""
    speech = with_silence(kokoro_speech(SHORT), lead=0.2, tail=0.3, rate=8000).to_pcm16()
    audio = codecs.from_pcm16(speech, fmt)

    async def scenario() -> list[dict[str, Any]]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(
            model="whisper-1", extra_query={"intent": "transcription"}
        ) as connection:
            events = await until(connection, "session.created")
            await connection.send(
                {
                    "type": "transcription_session.update",
                    "session": {
                        "input_audio_format": fmt,
                        "input_audio_transcription": TRANSCRIPTION,
                        "turn_detection": None,
                    },
                }
            )
            await until(connection, "transcription_session.updated", into=events)
            await connection.input_audio_buffer.commit(event_id="commit-too-early")
            await until(connection, "error", into=events)
            await stream(connection, audio, 1600, 0.2)  # 200 ms chunks in real time
            await connection.input_audio_buffer.commit()
            return await until(connection, "conversation.item.input_audio_transcription.completed", into=events)

    events = asyncio.run(scenario())
    error = of(events, "error")[0]["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["event_id"] == "commit-too-early"
    assert not of(events, "input_audio_buffer.speech_started")
    assert of(events, "input_audio_buffer.committed")
    _heard(of(events, "conversation.item.input_audio_transcription.completed")[0]["transcript"])


def test_bad_events_get_openai_errors_and_the_socket_stays_open(realtime_url: str) -> None:
    """Unknown events and fields, bad values, conversation events in a transcription session."""

    async def scenario() -> list[dict[str, Any]]:
        async with client(realtime_url, API_KEY).beta.realtime.connect(
            model="whisper-1", extra_query={"intent": "transcription"}
        ) as connection:
            events = await until(connection, "session.created")
            bad: list[dict[str, Any]] = [
                {"type": "no.such.event", "event_id": "e1"},
                {"type": "input_audio_buffer.append", "event_id": "e2", "audio": "AAAA", "volume": 3},
                {"type": "input_audio_buffer.append", "event_id": "e3", "audio": "not base64!"},
                {"type": "transcription_session.update", "event_id": "e4", "session": {"input_audio_format": "mp3"}},
                {"type": "transcription_session.update", "event_id": "e5", "session": {"voice": "alloy"}},
                {"type": "response.create", "event_id": "e6"},
                {
                    "type": "transcription_session.update",
                    "event_id": "e7",
                    "session": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
                },
            ]
            for event in bad:
                await connection.send(event)  # type: ignore[arg-type]
                await until(connection, "error", into=events)
            await connection.input_audio_buffer.clear(event_id="ok")
            return await until(connection, "input_audio_buffer.cleared", into=events)

    events = asyncio.run(scenario())
    errors = {e["error"]["event_id"]: e["error"] for e in of(events, "error")}
    assert set(errors) == {"e1", "e2", "e3", "e4", "e5", "e6", "e7"}
    assert errors["e1"]["param"] == "type"
    assert errors["e2"]["code"] == "unknown_parameter"
    assert errors["e2"]["param"] == "volume"
    assert errors["e3"]["param"] == "audio"
    assert errors["e4"]["param"] == "session.input_audio_format"
    assert errors["e5"]["code"] == "unknown_parameter"
    assert errors["e5"]["param"] == "session.voice"
    assert errors["e6"]["param"] == "type"
    assert errors["e7"]["param"] == "session.turn_detection.eagerness"
    assert all(e["type"] == "invalid_request_error" for e in errors.values())


def test_a_caller_holds_at_most_realtime_max_sessions(realtime_url: str) -> None:
    """The third session of one key is refused as OpenAI does (``session_limit_reached``, close 1013);
    a closed session gives its place back."""
    url = realtime_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    headers = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "realtime=v1"}

    async def created(ws: Any) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 60)))

    async def scenario() -> tuple[dict[str, Any], int | None, dict[str, Any]]:
        async with websockets.connect(url, additional_headers=headers) as one:
            await created(one)
            async with websockets.connect(url, additional_headers=headers) as two:
                await created(two)
                async with websockets.connect(url, additional_headers=headers) as three:
                    refused = await created(three)
                    with pytest.raises(websockets.ConnectionClosed):
                        await asyncio.wait_for(three.recv(), 60)
                    code = three.close_code
        for _ in range(150):  # until the server has seen the two close (at most ~30 s)
            async with websockets.connect(url, additional_headers=headers) as again:
                event = await created(again)
            if event["type"] != "error":
                break
            await asyncio.sleep(0.2)
        return refused, code, event

    refused, code, again = asyncio.run(scenario())
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "session_limit_reached"
    assert refused["error"]["type"] == "rate_limit_error"
    assert code == 1013
    assert again["type"] == "session.created"
