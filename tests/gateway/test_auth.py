"""API keys (header, bearer, WebSocket query) and per-key rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gateway.app import create_app
from gateway.ratelimit import RateLimited, RateLimiter
from tests.gateway.conftest import FakeBroker, gateway_settings

KEYS = "key-one,key-two"


@pytest.fixture
def client(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> Iterator[TestClient]:
    _, stt_url, _, tts_url = fake_brokers
    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        api_keys=KEYS,
        transcribe_rate_limit=60,
        synthesize_rate_limit=0,
        rate_limit_burst=2,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


PROTECTED = [
    ("GET", "/api/voice/voices"),
    ("POST", "/api/voice/synthesize"),
    ("POST", "/api/voice/transcribe"),
    ("POST", "/api/voice/audio-stream"),
    ("POST", "/api/voice/synthesize-batch"),
    ("POST", "/v1/audio/speech"),
    ("POST", "/v1/audio/transcriptions"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_api_route_needs_a_key(client: TestClient, method: str, path: str) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.request(method, path, headers={"Authorization": "Bearer key-three"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")


def test_bearer_and_x_api_key_both_work(client: TestClient) -> None:
    assert client.get("/api/voice/voices", headers={"Authorization": "Bearer key-one"}).status_code == 200
    assert client.get("/api/voice/voices", headers={"X-API-Key": "key-two"}).status_code == 200
    assert client.get("/api/voice/voices", headers={"Authorization": "bearer key-two"}).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/voice/health", "/docs", "/openapi.json"])
def test_health_metrics_and_docs_stay_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_websocket_key_by_header_or_query(client: TestClient) -> None:
    with client.websocket_connect("/api/voice/ws/chat") as ws:
        assert ws.receive_json()["error"]["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    for path, headers in (("/api/voice/ws/chat", {"X-API-Key": "key-one"}), ("/api/voice/ws/chat?api_key=key-two", {})):
        with client.websocket_connect(path, headers=headers) as ws:
            ws.send_text(json.dumps({"type": "ping"}))
            assert ws.receive_json() == {"type": "pong"}


def test_rate_limit_is_per_key_with_retry_after(client: TestClient) -> None:
    def transcribe(key: str) -> int:
        return client.post(
            "/api/voice/transcribe", files={"file": ("a.wav", b"RIFF")}, headers={"X-API-Key": key}
        ).status_code

    assert [transcribe("key-one") for _ in range(2)] == [200, 200]
    limited = client.post("/api/voice/transcribe", files={"file": ("a.wav", b"RIFF")}, headers={"X-API-Key": "key-one"})
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "1"
    assert transcribe("key-two") == 200  # another key, another bucket
    # Synthesis has no limit configured here.
    assert all(
        client.post("/api/voice/synthesize", json={"text": "x"}, headers={"X-API-Key": "key-one"}).status_code == 200
        for _ in range(4)
    )
    assert 'gateway_rate_limited_total{operation="transcribe"} 1.0' in client.get("/metrics").text


def test_rate_limit_applies_to_websocket_requests(client: TestClient) -> None:
    with client.websocket_connect("/api/voice/ws/chat?api_key=key-two") as ws:
        for n in range(3):
            ws.send_text(json.dumps({"type": "transcribe", "audio_base64": "UklGRg==", "id": n}))
        answers = {a["id"]: a for a in (ws.receive_json() for _ in range(3))}
    assert sorted(a["type"] for a in answers.values()) == ["error", "transcription", "transcription"]
    assert [a["error"]["code"] for a in answers.values() if a["type"] == "error"] == ["rate_limited"]


def test_token_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    limiter = RateLimiter("synthesize", per_minute=30, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.acquire("a")
    with pytest.raises(RateLimited) as info:
        limiter.acquire("a")
    assert info.value.retry_after == 2  # one token every two seconds
    now[0] = 2.0
    limiter.acquire("a")
    limiter.acquire("b", cost=3)
    with pytest.raises(Exception, match="burst"):
        limiter.acquire("c", cost=4)
