"""One test per finding of the attacker's probe (issue 14): each fails on the code before its fix."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from devkit.servers import free_port, serve
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.gateway.conftest import FakeBroker, gateway_settings
from voicestack_common.body_limit import BodyLimitMiddleware
from voicestack_common.logging import configure_logging

DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000
GATEWAY_JSON_ROUTES = [
    "/api/voice/synthesize",
    "/api/voice/audio-stream",
    "/api/voice/synthesize-batch",
    "/api/voice/transcribe",
    "/v1/audio/speech",
]


@pytest.fixture
def brokers() -> Iterator[tuple[FakeBroker, str, FakeBroker, str]]:
    """Fake brokers; the TTS one refuses bodies over 1 MiB the way a real broker does (413, connection closed)."""
    stt, tts = FakeBroker(), FakeBroker()
    tts_app = tts.app()
    tts_app.add_middleware(BodyLimitMiddleware, max_bytes=1024 * 1024)
    with serve(stt.app()) as stt_base, serve(tts_app) as tts_base:
        yield stt, stt_base, tts, tts_base


def _gateway(brokers: tuple[FakeBroker, str, FakeBroker, str], **overrides: Any) -> FastAPI:
    _, stt_base, _, tts_base = brokers
    return create_app(gateway_settings(stt_urls=stt_base, tts_urls=tts_base, **overrides))


# 1. An oversized synthesis body is a 413, never a dead replica.


def test_an_oversized_synthesis_is_refused_at_the_gateway(brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    _, _, tts, _ = brokers
    with TestClient(_gateway(brokers)) as client:
        for _ in range(5):
            response = client.post("/api/voice/synthesize", json={"text": "b" * 1126400})
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "payload_too_large"
        assert tts.requests == []
        assert client.get("/readyz").status_code == 200


def test_a_broker_refusing_a_body_mid_upload_is_not_marked_down(
    brokers: tuple[FakeBroker, str, FakeBroker, str],
) -> None:
    # The gateway's own guard off: the broker's 413 (often a reset connection) reaches the gateway.
    with TestClient(_gateway(brokers, tts_max_request_bytes=64 * 1024 * 1024, upstream_retries=0)) as client:
        statuses = set()
        for _ in range(10):
            response = client.post("/api/voice/synthesize", json={"text": "b" * 1126400})
            statuses.add(response.status_code)
            assert response.status_code in (413, 502), response.text
            assert client.get("/readyz").status_code == 200
        health = client.get("/api/voice/health").json()
        assert all(replica["healthy"] for replica in health["tts_replicas"])
        assert client.post("/api/voice/synthesize", json={"text": "hello"}).status_code == 200


# 2. The WebSocket's ?api_key= never reaches a log line.


def test_api_key_in_a_query_string_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("gateway", "DEBUG", "json")
    try:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/voice/ws/chat?api_key=S3CRET&x=1", "1.1", 101
        )
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/api/voice/ws/chat?session_id=a&API_KEY=S3CRET"
        )
        logging.getLogger("gateway").info("opened /x?token=S3CRET")
    finally:
        logging.getLogger().handlers[:] = []
    err = capsys.readouterr().err
    assert "S3CRET" not in err
    assert err.count("[REDACTED]") == 3
    assert "session_id=a" in err


# 4. Any web page could drive the local stack: Origin and Host are checked.


def test_websocket_origin_is_checked(brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    with TestClient(_gateway(brokers, cors_origins="https://app.example")) as client:
        for origin in ("https://evil.example", "null", "http://localhost:3000"):
            with (
                pytest.raises(WebSocketDisconnect) as info,
                client.websocket_connect("/api/voice/ws/chat", headers={"origin": origin}) as ws,
            ):
                ws.receive_text()
            assert info.value.code == 1008, origin
        for headers in ({"origin": "https://app.example"}, {"origin": "http://testserver"}, {}):
            with client.websocket_connect("/api/voice/ws/chat", headers=headers) as ws:
                ws.send_text(json.dumps({"type": "ping", "id": 1}))
                assert json.loads(ws.receive_text()) == {"type": "pong", "id": 1}


def test_host_defaults_to_loopback_names(brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    assert GatewaySettings(_env_file=None).trusted_hosts == "localhost,127.0.0.1,::1"  # type: ignore[call-arg]
    _, stt_base, _, tts_base = brokers
    app = create_app(GatewaySettings(_env_file=None, stt_urls=stt_base, tts_urls=tts_base, events_url=""))  # type: ignore[call-arg]
    with serve(app) as url:
        port = url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert httpx.get(url + "/api/voice/voices", headers={"host": host}).status_code == 200, host
        rebound = httpx.get(url + "/api/voice/voices", headers={"host": f"attacker.example:{port}"})
        assert (rebound.status_code, rebound.json()["error"]["code"]) == (400, "invalid_host")
        # Probes come by address: they are never refused for their Host.
        assert httpx.get(url + "/readyz", headers={"host": "10.1.2.3:8000"}).status_code == 200


# 5. Deep nesting is a 400 on every JSON route and a clean error on the WebSocket.


@pytest.mark.parametrize("route", GATEWAY_JSON_ROUTES)
def test_deeply_nested_json_is_a_400_and_the_connection_survives(
    brokers: tuple[FakeBroker, str, FakeBroker, str], route: str
) -> None:
    with serve(_gateway(brokers)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for body in (DEEP_ARRAY, DEEP_OBJECT, '{"text": ' + DEEP_ARRAY + "}"):
            response = client.post(route, content=body, headers={"content-type": "application/json"})
            assert response.status_code in (400, 422), response.text
            assert response.json()["error"]["code"] in ("json_too_deep", "invalid_request")
            # The same keep-alive connection serves the next request.
            assert client.get("/healthz").status_code == 200


def test_deeply_nested_websocket_messages_get_an_error_event(
    brokers: tuple[FakeBroker, str, FakeBroker, str],
) -> None:
    with TestClient(_gateway(brokers)) as client, client.websocket_connect("/api/voice/ws/chat") as ws:
        for message in ("[" * 1500 + "]" * 1500, DEEP_OBJECT, json.dumps({"type": "ping", "id": [[[[1]]]]})):
            ws.send_text(message)
            answer = json.loads(ws.receive_text())
            assert answer["type"] == "error"
            assert answer["error"]["code"] in ("json_too_deep", "invalid_message")
        ws.send_text(json.dumps({"type": "ping", "id": "still-here"}))
        assert json.loads(ws.receive_text()) == {"type": "pong", "id": "still-here"}


def test_deeply_nested_json_at_the_bridge(tmp_path: Any) -> None:
    from devkit.mqtt_kit import fast_settings
    from mqtt_bridge.app import create_app as create_bridge

    # No MQTT broker: events are accepted into the outbox regardless, which is all this needs.
    settings = fast_settings(f"mqtt://127.0.0.1:{free_port()}", "deep", tmp_path / "outbox.sqlite3")
    with TestClient(create_bridge(settings)) as client:
        for body in (DEEP_ARRAY, DEEP_OBJECT):
            response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
            assert (response.status_code, response.json()["error"]["code"]) == (400, "json_too_deep")


def test_deeply_nested_json_in_the_shared_parser() -> None:
    from voicestack_common.errors import ClientError
    from voicestack_common.jsonbody import parse_json

    for body in (DEEP_ARRAY, DEEP_OBJECT, '{"a": "' + "[" * 5000 + '"}'):
        if body.startswith('{"a": "'):
            assert parse_json(body) == {"a": "[" * 5000}  # brackets inside strings are not nesting
            continue
        with pytest.raises(ClientError) as info:
            parse_json(body)
        assert info.value.code == "json_too_deep"


# 7. Contract drift.


def test_metrics_are_documented_as_prometheus_text(brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    with TestClient(_gateway(brokers)) as client:
        schema = client.get("/openapi.json").json()
        assert list(schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_gateway_openapi_declares_security_and_empty_body(brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    with TestClient(_gateway(brokers)) as client:
        schema = client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path in ("/api/voice/synthesize", "/api/voice/audio-stream", "/api/voice/synthesize-batch", "/v1/audio/speech"):
        operation = schema["paths"][path]["post"]
        assert "empty_body" in operation["responses"]["400"]["description"], path
        assert {"bearer": []} in operation["security"], path
    assert "security" not in schema["paths"]["/api/voice/health"]["get"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


# 9. A busy broker is not a dead one.


class _SlowReadyz:
    """A broker whose /readyz answers after ``delay`` seconds (its CPU held by inference)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.broker = FakeBroker()

    def app(self) -> FastAPI:
        app = FastAPI()
        inner = self.broker.app()

        @app.middleware("http")
        async def slow(request: Any, call_next: Any) -> Any:
            if request.url.path == "/readyz" and self.delay:
                import asyncio

                await asyncio.sleep(self.delay)
            return await call_next(request)

        app.mount("/", inner)
        return app


def test_a_busy_broker_keeps_the_gateway_ready() -> None:
    stt, tts = _SlowReadyz(), FakeBroker()
    stt.delay = 1.0  # every probe times out; the connection is accepted
    with serve(stt.app(), ready_path=None) as stt_base, serve(tts.app()) as tts_base:
        # The health answer reuses the background checks (a live check would add probes of its own).
        common = {"stt_urls": stt_base, "tts_urls": tts_base, "health_timeout": 0.2, "health_cache_seconds": 600}
        with TestClient(create_app(gateway_settings(health_interval=0.2, health_down_after=1000, **common))) as client:
            busy_rounds = 0
            deadline = time.monotonic() + 30
            while busy_rounds < 5:
                assert time.monotonic() < deadline, "the replica never showed as busy"
                assert client.get("/readyz").status_code == 200
                replica = client.get("/api/voice/health").json()["sst_replicas"][0]
                assert replica["healthy"]
                busy_rounds += replica["busy"]
                time.sleep(0.1)
        # A replica whose probes time out round after round is down in the end.
        with TestClient(create_app(gateway_settings(health_interval=0.2, health_down_after=2, **common))) as client:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code == 200:
                assert time.monotonic() < deadline, "a broker that never answers must go down"
                time.sleep(0.1)
            stt.delay = 0.0
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the broker must come back"
                time.sleep(0.1)


def test_a_refusing_broker_is_down_at_once() -> None:
    tts = FakeBroker()
    with serve(tts.app()) as tts_base:
        dead = f"http://127.0.0.1:{free_port()}"
        with TestClient(create_app(gateway_settings(stt_urls=dead, tts_urls=tts_base))) as client:
            assert client.get("/readyz").status_code == 503
            replica = client.get("/api/voice/health").json()["sst_replicas"][0]
            assert (replica["healthy"], replica["busy"]) == (False, False)


def test_the_bridge_tells_busy_from_down() -> None:
    import asyncio

    from devkit.mqtt_kit import fast_settings
    from mqtt_bridge.health import HealthPoller, rollup

    # A socket that accepts connections and never answers: busy. A closed port: down.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    busy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    dead_url = f"http://127.0.0.1:{free_port()}"
    settings = fast_settings("mqtt://127.0.0.1:1", "p", Path("/nonexistent/outbox.sqlite3"))

    async def probe() -> tuple[str, str]:
        async with httpx.AsyncClient() as http:
            poller = HealthPoller(settings, http, None, None, None)  # type: ignore[arg-type]
            return (await poller.probe_replica(busy_url)).status, (await poller.probe_replica(dead_url)).status

    try:
        assert asyncio.run(probe()) == ("busy", "down")
    finally:
        listener.close()
    assert rollup(["busy", "up"]) == "up"
    assert rollup(["busy", "down"]) == "degraded"


def test_a_client_leaving_mid_body_is_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    """Found by the fuzzer: a caller gone while its body is read was logged as an unhandled 500."""
    from voicestack_common.service import Readiness, create_service_app
    from voicestack_common.settings import ServiceSettings

    async def ready(_: Any) -> Readiness:
        return Readiness(ready=True)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield {}

    app = create_service_app(
        title="t", version="0", settings=ServiceSettings(), namespace="t", lifespan=lifespan, readiness=ready
    )

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "app": app,
    }
    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sent[0]["status"] == 499
