"""The gateway's live relay (``WS /api/voice/ws/transcribe``) in front of two real STT broker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.live_audio import SENTENCES, pcm16_slices, recorder_slices, speech_with_pauses
from devkit.servers import free_port, serve
from devkit.speech import words
from gateway.app import create_app
from tests.gateway.conftest import EventReceiver, gateway_settings, wait_for
from tests.live.client import Outcome, check_sentences, collect, send_audio, send_in_real_time

pytestmark = [pytest.mark.engine, pytest.mark.slow]


class Broker:
    """An STT broker as its own process (so a test can kill it)."""

    def __init__(self, model_cache: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A long idle limit: on a loaded machine the test pauses its stream while decodes catch up.
        env = {
            **os.environ,
            "STT_CACHE_DIR": str(model_cache),
            "STT_WORKERS": "1",
            # The subject is the relay, not model choice: one model, the quick one.
            "STT_MODEL": "tiny.en",
            "STT_MODELS": "tiny.en",
            "STT_LOG_LEVEL": "WARNING",
            "STT_LIVE_IDLE_TIMEOUT": "600",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "stt_broker.app:create_app", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the STT broker did not start")
            time.sleep(0.1)

    def live_sessions(self) -> float:
        try:
            text = httpx.get(self.url + "/metrics", timeout=2).text
        except httpx.TransportError:
            return 0.0
        return next(
            float(line.split()[1]) for line in text.splitlines() if line.startswith("stt_live_sessions_active ")
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)


@pytest.fixture
def brokers(model_cache: Path) -> Iterator[list[Broker]]:
    started = [Broker(model_cache), Broker(model_cache)]
    try:
        yield started
    finally:
        for broker in started:
            broker.kill()


def test_a_replica_dies_mid_utterance_and_the_client_sees_nothing(brokers: list[Broker]) -> None:
    receiver = EventReceiver()
    speech = speech_with_pauses()
    killed: list[Broker] = []

    def kill_the_serving_replica(outcome: Outcome) -> bool:
        if len(outcome.finals) < 1:
            return False
        serving = [b for b in brokers if b.live_sessions() == 1]
        assert len(serving) == 1
        serving[0].kill()
        killed.append(serving[0])
        return True

    with serve(receiver.app(), ready_path="/readyz") as events_url:
        settings = gateway_settings(stt_urls=",".join(b.url for b in brokers), events_url=events_url)
        with TestClient(create_app(settings)) as client:
            with client.websocket_connect("/api/voice/ws/transcribe?session_id=kitchen-1") as ws:
                ws.send_text(json.dumps({"type": "start", "format": "pcm16", "partials": False}))
                outcome = Outcome()
                # Mid-way through the second sentence (after the first final), the replica dies.
                waits = [(speech.spans[1][0] + 0.6, kill_the_serving_replica)]
                send_in_real_time(ws, pcm16_slices(speech.pcm, 100), 0.1, waits, outcome)
                ws.send_text(json.dumps({"type": "stop"}))
                collect(ws, outcome)
            assert killed
            assert outcome.error_codes() == []
            check_sentences(outcome, speech, partials=False)
            assert outcome.events[0]["session_id"] == "kitchen-1"
            assert [e["type"] for e in outcome.events].count("ready") == 1
            assert outcome.close_code == 1000
            wait_for(lambda: len(receiver.events) == 3)
            metrics = client.get("/metrics").text
            assert "gateway_live_failovers_total 1.0" in metrics
    published = sorted(receiver.events, key=lambda e: e.utterance_id or 0)
    assert [e.utterance_id for e in published] == [1, 2, 3]
    assert {e.session_id for e in published} == {"kitchen-1"}
    assert [words(e.text) for e in published] == [words(f["text"]) for f in outcome.finals]


def test_auth_per_key_limit_and_webm(brokers: list[Broker]) -> None:
    settings = gateway_settings(stt_urls=brokers[0].url, api_keys="k1,k2", live_max_sessions_per_key=1)
    speech = speech_with_pauses(SENTENCES[:1])
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect("/api/voice/ws/transcribe") as ws:
            refused = collect(ws)
        assert refused.error_codes() == ["unauthorized"]
        assert refused.close_code == 1008
        with client.websocket_connect("/api/voice/ws/transcribe?api_key=k1") as ws:
            ws.send_text(json.dumps({"type": "start", "format": "webm"}))
            assert ws.receive_json()["type"] == "ready"
            with client.websocket_connect("/api/voice/ws/transcribe?api_key=k1") as second:
                busy = collect(second)
            assert busy.error_codes() == ["too_many_sessions"]
            assert busy.close_code == 1013
            send_audio(ws, recorder_slices(speech.pcm, "webm"))
            ws.send_text(json.dumps({"type": "stop"}))
            outcome = collect(ws)
        assert [words(f["text"]) for f in outcome.finals] == [words(SENTENCES[0])]
        with client.websocket_connect("/api/voice/ws/transcribe?api_key=k2") as ws:
            ws.send_bytes(recorder_slices(speech.pcm, "ogg")[0])
            assert collect(ws).error_codes() == ["start_required"]


def test_no_replica_takes_the_session() -> None:
    settings = gateway_settings(stt_urls=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client, client.websocket_connect("/api/voice/ws/transcribe") as ws:
        ws.send_bytes(bytes(3200))
        outcome = collect(ws)
    assert outcome.error_codes() == ["no_upstream"]
    assert outcome.close_code == 1013


def test_cli_streams_a_recording_and_prints_finals(model_cache: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stt_broker.app import create_app as create_stt
    from tests.stt_broker.conftest import stt_settings
    from voicestack.cli import app as cli
    from voicestack_common.encode import encode_audio

    speech = speech_with_pauses(SENTENCES[:2])
    recording = tmp_path / "two.wav"
    recording.write_bytes(encode_audio(speech.pcm, "wav"))
    with (
        serve(create_stt(stt_settings(model_cache, workers=1))) as stt_url,
        serve(create_app(gateway_settings(stt_urls=stt_url)), ready_path="/healthz") as url,
    ):
        result = CliRunner().invoke(cli, ["stt", "--stream", str(recording), "--speed", "4", "--url", url])
        assert result.exit_code == 0, result.output
        finals = [line for line in result.stdout.splitlines() if line.startswith("[")]
        assert [words(line.split("]", 1)[1]) for line in finals] == [words(s) for s in SENTENCES[:2]]
        as_json = CliRunner().invoke(
            cli, ["stt", "--stream", str(recording), "--speed", "8", "--format", "json", "--url", url]
        )
        events = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert events[0]["type"] == "ready"
        assert events[-1]["type"] == "closed"
        missing = tmp_path / "missing.wav"
        failed = CliRunner().invoke(cli, ["stt", "--stream", str(missing), "--url", url])
        assert failed.exit_code != 0
