"""Live sessions under bad input and limits: a stable error code, the right close code, nothing leaked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.live_audio import SENTENCES, pcm16_slices, recorder_slices, speech_with_pauses
from devkit.speech import words
from stt_broker.app import create_app
from tests.live.client import collect, send_audio
from tests.stt_broker.conftest import stt_settings

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def tight(model_cache: Path) -> Iterator[TestClient]:
    """A broker with small live limits: one session, 4 KiB frames, 1.5 s idle, 4 s sessions."""
    settings = stt_settings(
        model_cache,
        live_max_sessions=1,
        live_max_frame_bytes=4096,
        live_idle_timeout=1.5,
        live_max_session_seconds=4.0,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def metric(client: TestClient, name: str) -> float:
    """A metric's value, summed over its labels (0 when it has no samples yet)."""
    lines = client.get("/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith((name + " ", name + "{")))


def settled(client: TestClient) -> None:
    """No session open, no decode running or queued (bounded wait: cancelled decodes stop soon)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            metric(client, "stt_live_sessions_active") == 0
            and metric(client, "stt_workers_busy") == 0
            and metric(client, "stt_queue_depth") == 0
        ):
            return
        time.sleep(0.05)
    raise AssertionError("a session or decode was left behind")


def fatal(client: TestClient, *messages: str | bytes) -> tuple[str, int | None]:
    with client.websocket_connect("/v1/stream") as ws:
        for message in messages:
            if isinstance(message, bytes):
                ws.send_bytes(message)
            else:
                ws.send_text(message)
        outcome = collect(ws)
    errors = [e for e in outcome.events if e["type"] == "error" and e.get("fatal")]
    assert len(errors) == 1, outcome.events
    settled(client)
    return errors[0]["error"]["code"], outcome.close_code


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        ({"type": "start", "format": "mp3"}, "format"),
        ({"type": "start", "sample_rate": 100}, "sample_rate"),
        ({"type": "start", "language": "klingon"}, "language"),
        ({"type": "start", "silence_ms": "long"}, "silence_ms"),
        ({"type": "start", "volume": 11}, "volume"),
    ],
)
def test_invalid_start(tight: TestClient, start: dict[str, object], problem: str) -> None:
    assert fatal(tight, json.dumps(start)) == ("invalid_start", 1008)


def test_container_audio_without_start(tight: TestClient) -> None:
    webm = recorder_slices(speech_with_pauses(SENTENCES[:1]).pcm, "webm")[0]
    assert fatal(tight, webm) == ("start_required", 1008)
    assert fatal(tight, b"OggS" + bytes(100)) == ("start_required", 1008)


def test_frames_that_are_not_webm(tight: TestClient) -> None:
    start = json.dumps({"type": "start", "format": "webm"})
    assert fatal(tight, start, b"this is not a webm stream at all") == ("unsupported_audio", 1007)
    head = recorder_slices(speech_with_pauses(SENTENCES[:1]).pcm, "webm")[0]
    assert fatal(tight, start, head, b"\x00garbage" * 10) == ("invalid_audio", 1007)


def test_a_webm_stream_that_breaks_off(tight: TestClient) -> None:
    slices = recorder_slices(speech_with_pauses(SENTENCES[:1]).pcm, "webm")
    cut = b"".join(slices)[: -len(slices[-1]) // 2 - 7]
    with tight.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "webm", "partials": False}))
        send_audio(ws, [cut[i : i + 4000] for i in range(0, len(cut), 4000)])
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    assert outcome.error_codes() == ["truncated_audio"]
    assert len(outcome.finals) == 1
    assert outcome.events[-1]["type"] == "closed"


def test_frame_too_large(tight: TestClient) -> None:
    assert fatal(tight, bytes(4098)) == ("frame_too_large", 1009)


def test_idle_and_session_length(tight: TestClient) -> None:
    assert fatal(tight, bytes(320)) == ("idle_timeout", 1008)
    with tight.websocket_connect("/v1/stream") as ws:
        for _ in range(6):  # 1 s apart: never idle, but past the 4 s session limit
            ws.send_bytes(bytes(3200))
            time.sleep(1.0)
        outcome = collect(ws)
    assert outcome.error_codes() == ["session_too_long"]
    assert outcome.close_code == 1008
    settled(tight)


def test_saturated_broker_closes_with_1013(tight: TestClient) -> None:
    with tight.websocket_connect("/v1/stream") as first:
        first.send_bytes(bytes(3200))
        assert first.receive_json()["type"] == "ready"
        with tight.websocket_connect("/v1/stream") as second:
            outcome = collect(second)
        assert outcome.error_codes() == ["saturated"]
        assert outcome.close_code == 1013
        first.send_text(json.dumps({"type": "stop"}))
        assert collect(first).events[-1]["type"] == "closed"
    settled(tight)


def test_disconnect_mid_utterance_leaves_no_decode(tight: TestClient) -> None:
    speech = speech_with_pauses((" ".join(SENTENCES),), pause_s=0.8)
    before = metric(tight, "stt_live_finals_total")
    with tight.websocket_connect("/v1/stream") as ws:
        send_audio(ws, pcm16_slices(speech.pcm, 100))  # the endpoint fires: a final is being decoded
        assert ws.receive_json()["type"] == "ready"
        assert ws.receive_json()["type"] == "speech_started"
    settled(tight)
    assert metric(tight, "stt_live_finals_total") == before


@pytest.fixture(scope="module")
def impatient(model_cache: Path) -> Iterator[TestClient]:
    """One single-threaded context and an idle limit far shorter than a decode of the whole speech."""
    settings = stt_settings(model_cache, workers=1, threads=1, live_idle_timeout=0.2)
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_client_waiting_on_its_final_is_not_idle(impatient: TestClient) -> None:
    speech = speech_with_pauses(SENTENCES[:1])
    with impatient.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000, "partials": False}))
        send_audio(ws, pcm16_slices(speech.pcm, 100))
        outcome = collect(ws)  # the client sends nothing more: only after the final is it idle
    assert len(outcome.finals) == 1
    assert words(SENTENCES[0])[:3] == words(outcome.finals[0]["text"])[:3]
    assert outcome.error_codes() == ["idle_timeout"]
    assert outcome.close_code == 1008
    settled(impatient)
