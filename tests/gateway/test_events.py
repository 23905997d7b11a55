"""Speech events to a real local HTTP receiver: content, retries, never delaying the client, drops."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from devkit.servers import free_port, serve
from gateway.app import create_app
from tests.gateway.conftest import EventReceiver, FakeBroker, gateway_settings, serve_on, slow_stream, wait_for
from voicestack_common import event_outbox as events_module
from voicestack_common.contracts.audio import audio_headers
from voicestack_common.encode import wav_header

FakeBrokers = tuple[FakeBroker, str, FakeBroker, str]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "RETRY_INITIAL_S", 0.05)
    monkeypatch.setattr(events_module, "RETRY_MAX_S", 0.2)


@pytest.fixture
def receiver() -> Iterator[tuple[EventReceiver, str]]:
    bridge = EventReceiver()
    with serve(bridge.app()) as url:
        yield bridge, url


def test_transcription_and_synthesis_become_events(
    fake_brokers: FakeBrokers, receiver: tuple[EventReceiver, str]
) -> None:
    _, stt_url, _, tts_url = fake_brokers
    bridge, bridge_url = receiver
    with TestClient(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, events_url=bridge_url))) as client:
        heard = client.post(
            "/api/voice/transcribe",
            files={"file": ("a.wav", b"RIFF")},
            data={"language": "en"},
            headers={"X-Session-ID": "kitchen-1"},
        )
        said = client.post("/api/voice/synthesize", json={"text": "Lights on.", "voice": "jm_kumo", "lang_code": "a"})
        wait_for(lambda: len(bridge.events) == 2)
    transcription, synthesis = sorted(bridge.events, key=lambda e: e.type, reverse=True)
    assert transcription.type == "transcription"
    assert transcription.request_id == heard.headers["X-Request-ID"]
    assert transcription.session_id == "kitchen-1"
    assert (transcription.text, transcription.language, transcription.model) == ("hello world", "en", "fake")
    assert (transcription.duration_seconds, transcription.confidence) == (1.0, 0.9)
    assert transcription.started_at <= transcription.finished_at
    assert transcription.source == "gateway"
    assert synthesis.type == "synthesis"
    assert synthesis.request_id == said.headers["X-Request-ID"]
    assert (synthesis.text, synthesis.voice, synthesis.language) == ("Lights on.", "jm_kumo", "a")
    assert synthesis.duration_seconds == 0.5
    assert transcription.event_id != synthesis.event_id


def test_streams_websockets_and_openai_routes_send_events(
    fake_brokers: FakeBrokers, receiver: tuple[EventReceiver, str]
) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    bridge, bridge_url = receiver
    one_second = wav_header(24_000, None) + b"\0" * 48_000
    # As the TTS broker streams uncompressed audio: bytes per second after the WAV header.
    counted = audio_headers(byte_rate=48_000, data_offset=44)
    tts.answer = lambda path, body: slow_stream([one_second[:1000], one_second[1000:]], pause=0.01, headers=counted)
    with TestClient(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, events_url=bridge_url))) as client:
        assert client.post("/api/voice/audio-stream", json={"text": "Stream me."}).content == one_second
        client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "OpenAI me.", "voice": "alloy", "response_format": "wav"},
        )
        client.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")}, data={"model": "whisper-1"})
        with client.websocket_connect("/api/voice/ws/chat?session_id=ws-7") as ws:
            ws.send_text(json.dumps({"type": "transcribe", "audio_base64": "UklGRg=="}))
            assert ws.receive_json()["type"] == "transcription"
        wait_for(lambda: len(bridge.events) == 4)
    by_text = {e.text: e for e in bridge.events}
    assert by_text["Stream me."].duration_seconds == pytest.approx(1.0)
    assert by_text["OpenAI me."].type == "synthesis"
    openai_heard, ws_heard = sorted(
        (e for e in bridge.events if e.type == "transcription"), key=lambda e: e.session_id or ""
    )
    assert (openai_heard.text, openai_heard.duration_seconds) == ("hello world", 1.0)
    assert ws_heard.session_id == "ws-7"


def test_a_slow_bridge_never_delays_the_client(fake_brokers: FakeBrokers) -> None:
    _, stt_url, _, tts_url = fake_brokers
    bridge = EventReceiver(delay=3.0)
    with (
        serve(bridge.app()) as bridge_url,
        TestClient(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, events_url=bridge_url))) as client,
    ):
        started = time.monotonic()
        for _ in range(3):
            assert client.post("/api/voice/transcribe", files={"file": ("a.wav", b"RIFF")}).status_code == 200
        assert time.monotonic() - started < 2.0


def test_events_wait_for_a_bridge_that_is_down_and_drop_beyond_the_queue(fake_brokers: FakeBrokers) -> None:
    _, stt_url, _, tts_url = fake_brokers
    port = free_port()
    settings = gateway_settings(
        stt_urls=stt_url, tts_urls=tts_url, events_url=f"http://127.0.0.1:{port}", events_queue_size=2
    )
    with TestClient(create_app(settings)) as client:
        for n in range(3):  # the bridge is down: all answered, two kept, one dropped
            response = client.post("/api/voice/synthesize", json={"text": f"event {n}"})
            assert response.status_code == 200
        assert client.get("/api/voice/health").json()["events"] == {
            "enabled": True,
            "pending": 2,
            "sent": 0,
            "dropped": 1,
        }
        assert 'gateway_events_dropped_total{reason="queue_full"} 1.0' in client.get("/metrics").text
        bridge = EventReceiver(fail_first=2)  # and then it starts, answering 503 at first
        with serve_on(bridge.app(), port):
            wait_for(lambda: len(bridge.events) == 2)
        assert [e.text for e in bridge.events] == ["event 0", "event 1"]
        assert bridge.attempts == 4
        assert "gateway_events_sent_total 2.0" in client.get("/metrics").text
