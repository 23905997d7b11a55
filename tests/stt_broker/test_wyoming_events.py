"""A transcript made over Wyoming becomes an MQTT transcript event: STT broker → bridge → mosquitto."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from wyoming.asr import Transcribe, Transcript

from devkit.mqtt_kit import Mosquitto, fast_settings, subscriber
from devkit.servers import free_port, serve
from devkit.speech import words
from devkit.wyoming_kit import audio_events, client, metric, read_until, run, send_all, wait_for
from mqtt_bridge.app import create_app as create_bridge
from stt_broker.app import create_app
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_wyoming_transcript_is_published_on_the_transcripts_topic(
    model_cache: Path, tmp_path: Path, sentence: tuple[str, Pcm]
) -> None:
    text, pcm = sentence
    prefix = f"vs-test-{uuid.uuid4().hex[:10]}"
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        bridge_settings = fast_settings(mosquitto.url, prefix, tmp_path / "outbox.sqlite3")
        with (
            subscriber(mosquitto.port, [f"{prefix}/transcripts"]) as sub,
            serve(create_bridge(bridge_settings)) as bridge_url,
        ):
            port = free_port()
            settings = stt_settings(model_cache, wyoming_enabled=True, wyoming_port=port, events_url=bridge_url)
            with serve(create_app(settings)) as url:

                async def transcribe() -> Transcript:
                    async with client(port) as conn:
                        await send_all(conn, [Transcribe(language="en").event(), *audio_events(pcm)])
                        return Transcript.from_event((await read_until(conn, "transcript-stop"))[-2])

                transcript = run(transcribe())
                event = sub.wait_for(f"{prefix}/transcripts", timeout=30).json()
                wait_for(lambda: metric(url, "stt_events_sent_total") == 1, "the bridge to accept the event")
    finally:
        mosquitto.stop()
    assert words(transcript.text) == words(text)
    assert event["type"] == "transcription"
    assert event["text"] == transcript.text
    assert event["source"] == "stt_broker/wyoming"
    assert (event["language"], event["model"]) == ("en", "tiny.en")
    assert event["duration_seconds"] == pytest.approx(pcm.duration, abs=0.05)
    assert 0 < event["confidence"] <= 1
