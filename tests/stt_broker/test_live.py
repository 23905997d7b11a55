"""Live transcription on the broker (``WS /v1/stream``) with the real engine and generated speech."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devkit.live_audio import SENTENCES, pcm16_slices, recorder_slices, speech_with_pauses
from devkit.speech import words
from stt_broker.app import create_app
from tests.live.client import (
    Outcome,
    check_sentences,
    collect,
    first,
    partials_every_sentence,
    send_audio,
    send_in_real_time,
)
from tests.stt_broker.conftest import stt_settings

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def live(model_cache: Path) -> Iterator[TestClient]:
    # A long idle limit: on a loaded machine the real-time test pauses while decodes catch up.
    with TestClient(create_app(stt_settings(model_cache, workers=2, live_idle_timeout=600))) as client:
        yield client


def test_pcm_at_real_time_pace_gives_partials_then_one_final_per_sentence(live: TestClient) -> None:
    speech = speech_with_pauses()
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000}))
        outcome = Outcome()
        send_in_real_time(ws, pcm16_slices(speech.pcm, 100), 0.1, partials_every_sentence(speech), outcome)
        ws.send_text(json.dumps({"type": "stop"}))
        collect(ws, outcome)
    check_sentences(outcome, speech, partials=True)
    ready = outcome.events[0]
    assert ready["type"] == "ready"
    assert ready["settings"]["silence_ms"] == 600
    assert ready["model"] == "tiny.en"
    closed = outcome.events[-1]
    assert closed == {
        "type": "closed",
        "audio_seconds": pytest.approx(speech.pcm.duration, abs=0.01),
        "utterances": 3,
        "reason": "stop",
    }
    assert outcome.close_code == 1000
    metrics = live.get("/metrics").text
    assert "stt_live_final_latency_seconds_count" in metrics
    assert "stt_live_partial_interval_seconds" in metrics


def test_seed_002_raw_pcm_without_start_faster_than_real_time(live: TestClient) -> None:
    speech = speech_with_pauses(engine="espeak", voice="en-us")
    with live.websocket_connect("/v1/stream") as ws:
        send_audio(ws, pcm16_slices(speech.pcm, 100), seconds_per_frame=0.025)
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    assert outcome.events[0]["settings"]["format"] == "pcm16"
    check_sentences(outcome, speech, partials=False)


def test_webm_in_media_recorder_slices(live: TestClient) -> None:
    speech = speech_with_pauses(voice="jf_alpha")
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "webm", "words": True}))
        send_audio(ws, recorder_slices(speech.pcm, "webm", 250), seconds_per_frame=0.125)
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    check_sentences(outcome, speech, partials=False)
    for final in outcome.finals:
        assert [w["word"] for w in final["words"]]
        assert all(final["start"] <= w["start"] <= w["end"] <= final["end"] for w in final["words"])


def test_ogg_as_base64_messages_and_stereo_48k_pcm(live: TestClient) -> None:
    speech = speech_with_pauses(SENTENCES[:2])
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "format": "ogg", "partials": False}))
        send_audio(ws, recorder_slices(speech.pcm, "ogg", 250), base64_json=True)
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    check_sentences(outcome, speech, partials=False)
    assert not outcome.of("partial")
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "sample_rate": 48000, "channels": 2}))
        send_audio(ws, pcm16_slices(speech.pcm, 250, rate=48000, channels=2))
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    check_sentences(outcome, speech, partials=False)


def test_commit_and_clear_without_vad(live: TestClient) -> None:
    speech = speech_with_pauses(SENTENCES[:1])
    frames = pcm16_slices(speech.pcm, 200)
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "vad": False, "partials": False}))
        send_audio(ws, frames)
        ws.send_text(json.dumps({"type": "commit"}))
        send_audio(ws, frames)
        ws.send_text(json.dumps({"type": "clear"}))
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    assert len(outcome.finals) == 1
    final = outcome.finals[0]
    assert words(final["text"]) == words(SENTENCES[0])
    assert final["start"] == 0
    assert final["end"] == pytest.approx(speech.pcm.duration, abs=0.01)
    assert first(outcome.events, "closed")["audio_seconds"] == pytest.approx(2 * speech.pcm.duration, abs=0.02)


def test_commit_with_nothing_open_is_a_soft_error(live: TestClient) -> None:
    with live.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(bytes(3200))
        ws.send_text(json.dumps({"type": "commit"}))
        ws.send_text("this is not json")
        ws.send_text(json.dumps({"type": "start"}))
        ws.send_text(json.dumps({"type": "dance"}))
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    assert outcome.error_codes() == ["nothing_to_commit", "invalid_message", "invalid_message", "invalid_message"]
    assert outcome.events[-1]["type"] == "closed"
    assert outcome.close_code == 1000


def test_long_speech_is_cut_at_a_quiet_point(model_cache: Path, two_sentences: tuple[str, object]) -> None:
    text = " ".join(SENTENCES)
    speech = speech_with_pauses((text,), pause_s=0.5)
    settings = stt_settings(model_cache, live_max_utterance_seconds=3.0)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "partials": False}))
        send_audio(ws, pcm16_slices(speech.pcm, 200))
        ws.send_text(json.dumps({"type": "stop"}))
        outcome = collect(ws)
    finals = outcome.finals
    assert len(finals) >= 2
    assert all(f["end"] - f["start"] <= 3.0 + 0.05 for f in finals)
    heard = [w for f in finals for w in words(f["text"])]
    expected = words(text)
    assert len([w for w in expected if w in heard]) >= len(expected) - 2, heard
