"""Gateway fixtures: the real brokers served once per test package, fake brokers for fault injection.

Package scope, not session: a server left running would keep polling its upstreams through every later
package's tests, where respx intercepts all of httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from devkit.servers import serve
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.stt_broker.conftest import stt_settings
from tests.tts_broker.conftest import tts_settings
from voicestack_common.contracts.audio import audio_headers
from voicestack_common.events import EVENTS_PATH, SpeechEvent

# A short sentence Kokoro says in about a second and Whisper tiny.en hears word for word.
SHORT = "Please call me back tomorrow morning."


def gateway_settings(**overrides: Any) -> GatewaySettings:
    """Settings for tests: no .env, no events unless asked, quick health checks."""
    values: dict[str, Any] = {
        "events_url": "",
        "conversation_urls": "",
        "health_interval": 0.5,
        "health_cache_seconds": 0.0,
        "connect_timeout": 1.0,
        "health_timeout": 1.0,
        # TestClient's requests come as Host: testserver.
        "trusted_hosts": "localhost,127.0.0.1,::1,testserver",
    }
    values.update(overrides)
    return GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="package")
def stt_url(model_cache: Path) -> Iterator[str]:
    """The real STT broker (whisper.cpp, bundled tiny.en) over HTTP."""
    from stt_broker.app import create_app as create_stt

    with serve(create_stt(stt_settings(model_cache, workers=1, threads=2))) as url:
        yield url


@pytest.fixture(scope="package")
def tts_url(model_cache: Path) -> Iterator[str]:
    """The real TTS broker (Kokoro int8, bundled voices) over HTTP."""
    from tts_broker.app import create_app as create_tts

    with serve(create_tts(tts_settings(model_cache))) as url:
        yield url


@pytest.fixture(scope="package")
def gateway_url(stt_url: str, tts_url: str) -> Iterator[str]:
    """The gateway in front of both real brokers, as its own server."""
    with serve(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url))) as url:
        yield url


class FakeBroker:
    """A broker stand-in whose answers a test sets: records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.ready = True
        self.answer: Callable[[str, bytes], Response] = lambda path, body: JSONResponse(
            _default(path, body), headers=_default_headers(path)
        )
        self.lock = threading.Lock()

    def app(self) -> FastAPI:
        """The broker's ASGI app."""
        app = FastAPI()

        @app.get("/readyz")
        async def readyz() -> Response:
            return JSONResponse({"status": "ready"}, status_code=200 if self.ready else 503)

        @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
        async def anything(path: str, request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.requests.append({"path": "/v1/" + path, "headers": dict(request.headers), "body": body})
            if self.delay:
                await asyncio.sleep(self.delay)
            return self.answer("/v1/" + path, body)

        return app


def _default(path: str, body: bytes) -> dict[str, Any]:
    if path == "/v1/transcribe":
        return {"text": "hello world", "language": "en", "confidence": 0.9, "duration_seconds": 1.0, "model": "fake"}
    if path == "/v1/synthesize":
        text = json.loads(body).get("text", "")
        return {
            "audio_base64": "UklGRg==",
            "audio_sample_rate": 24000,
            "audio_duration_seconds": 0.5,
            "voice": json.loads(body).get("voice") or "jf_alpha",
            "speed": 1.0,
            "echo": text,
        }
    if path == "/v1/voices":
        return {"voices": ["jf_alpha", "jm_kumo"], "default_voice": "jf_alpha", "service": "Kokoro TTS"}
    if path == "/v1/audio/transcriptions":
        return {"text": "hello world", "usage": {"type": "duration", "seconds": 1}}
    return {}


def _default_headers(path: str) -> dict[str, str]:
    """What a real broker states of the audio in its answer (voicestack_common.contracts.audio)."""
    if path in ("/v1/transcribe", "/v1/audio/transcriptions"):
        return audio_headers(seconds=1.0)
    if path == "/v1/synthesize":
        return audio_headers(seconds=0.5)
    return {}


def slow_stream(
    chunks: list[bytes], pause: float, media_type: str = "audio/wav", headers: dict[str, str] | None = None
) -> StreamingResponse:
    """A streamed answer that pauses between chunks (``headers``: as the broker would send)."""

    async def body() -> Any:
        for chunk in chunks:
            yield chunk
            await asyncio.sleep(pause)

    return StreamingResponse(body(), media_type=media_type, headers=headers)


@pytest.fixture
def fake_brokers() -> Iterator[tuple[FakeBroker, str, FakeBroker, str]]:
    """A fake STT and a fake TTS broker, each served on its own port."""
    stt, tts = FakeBroker(), FakeBroker()
    with serve(stt.app()) as stt_base, serve(tts.app()) as tts_base:
        yield stt, stt_base, tts, tts_base


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class EventReceiver:
    """A stand-in for the MQTT bridge's ``POST /v1/events``: validates and keeps what it accepts."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.events: list[Any] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.delay = delay

    def app(self) -> FastAPI:
        """The receiver's ASGI app."""
        app = FastAPI()

        @app.get("/readyz")
        async def readyz() -> dict[str, str]:
            return {"status": "ready"}

        @app.post(EVENTS_PATH, status_code=202)
        async def accept(event: SpeechEvent) -> Response:
            self.attempts += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.attempts <= self.fail_first:
                return JSONResponse({"error": {"code": "not_ready", "message": "starting"}}, status_code=503)
            duplicate = any(e.event_id == event.event_id for e in self.events)
            if not duplicate:
                self.events.append(event)
            return JSONResponse({"event_id": event.event_id, "duplicate": duplicate}, status_code=202)

        return app


def serve_on(app: FastAPI, port: int) -> contextlib.AbstractContextManager[str]:
    """Serve ``app`` on a given loopback port (to bring a peer up where the gateway already points)."""
    return serve(app, port=port, ready_path=None)
