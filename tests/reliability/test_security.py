"""Security checks over the real services: keys on every route, secrets and speech kept out of logs,
names that cannot walk the filesystem, size limits on every route."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import WebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from devkit.servers import serve
from gateway.app import create_app
from tests.gateway.conftest import gateway_settings
from tests.reliability.figures import record
from voicestack_common.logging import configure_logging

KEY = "k-" + "7f3a9c1e5b" * 3
WRONG = "k-not-the-key"
# Open by design: probes and scrapes, the health answer, the API docs, and the voice page's static files
# (no data; the page asks for a key before it calls the API).
OPEN = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/voice/health",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/page/{name}",
}
SENTENCE = "Purple elephants whisper quietly beneath the silver bridge."


@pytest.fixture(scope="module")
def keyed_gateway(stt_url: str, tts_url: str) -> Iterator[tuple[FastAPI, str]]:
    """A gateway with an API key, over the real brokers."""
    app = create_app(
        gateway_settings(stt_urls=stt_url, tts_urls=tts_url, api_keys=KEY, stt_timeout=300, tts_timeout=300)
    )
    with serve(app) as url:
        yield app, url


def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str, set[str]]]:
    """(kind, path, methods) of every route, included routers flattened (FastAPI keeps them lazily)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from walk(original.routes, prefix + route.include_context.prefix)
        elif isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            yield "ws", prefix + route.path, set()
        elif hasattr(route, "methods"):
            yield "http", prefix + route.path, set(route.methods or {"GET"}) - {"HEAD", "OPTIONS"}


def _concrete(path: str) -> str:
    return path.replace("{name}", "index.html").replace("{", "").replace("}", "")


def test_every_route_refuses_a_missing_or_wrong_key(keyed_gateway: tuple[FastAPI, str]) -> None:
    app, url = keyed_gateway
    checked = 0
    seen = []
    for kind, path, methods in walk(app.routes):
        seen.append(path)
        if kind == "http":
            for method in sorted(methods):
                for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"X-API-Key": WRONG}):
                    response = httpx.request(method, url + _concrete(path), headers=headers, timeout=60)
                    if path in OPEN:
                        assert response.status_code != 401, (method, path)
                    else:
                        assert response.status_code == 401, (method, path, headers, response.text)
                        assert response.json()["error"]["code"] in ("unauthorized", "invalid_api_key")
                checked += 1
        else:
            ws_url = url.replace("http://", "ws://") + path
            for suffix in ("", f"?api_key={WRONG}"):
                with connect(ws_url + suffix, open_timeout=30) as ws:
                    refusal = json.loads(ws.recv(timeout=30))
                    assert refusal["type"] == "error"
                    assert refusal["error"]["code"] in ("unauthorized", "invalid_api_key")
                    with pytest.raises(ConnectionClosed) as closed:
                        ws.recv(timeout=30)
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1008
            with connect(ws_url + f"?api_key={KEY}", open_timeout=30) as ws:
                if path == "/api/voice/ws/chat":
                    ws.send(json.dumps({"type": "ping", "id": "k"}))
                    assert json.loads(ws.recv(timeout=30)) == {"type": "pong", "id": "k"}
                else:  # live routes wait for a start (or greet): whatever comes, it is not a refusal
                    try:
                        first = json.loads(ws.recv(timeout=3))
                    except TimeoutError:
                        first = {}
                    code = (first.get("error") or {}).get("code")
                    assert code not in ("unauthorized", "invalid_api_key"), (path, first)
            checked += 1
    assert "/api/voice/ws/chat" in seen
    assert "/api/voice/synthesize" in seen
    record("auth_walk", "gateway", {"routes": checked, "open_by_design": len(OPEN)})
    assert checked >= 15


@pytest.mark.engine
@pytest.mark.slow
def test_logs_hold_no_speech_text_audio_or_key(
    keyed_gateway: tuple[FastAPI, str], capfd: pytest.CaptureFixture[str]
) -> None:
    """An end-to-end run through the real brokers at INFO, then at DEBUG, as the services log it."""
    _, url = keyed_gateway
    auth = {"Authorization": f"Bearer {KEY}"}
    ws_url = url.replace("http://", "ws://") + f"/api/voice/ws/chat?api_key={KEY}"

    def run() -> str:
        synthesized = httpx.post(url + "/api/voice/synthesize", json={"text": SENTENCE}, headers=auth, timeout=300)
        assert synthesized.status_code == 200, synthesized.text
        audio_b64 = synthesized.json()["audio_base64"]
        heard = httpx.post(
            url + "/api/voice/transcribe",
            files={"file": ("clip.wav", base64.b64decode(audio_b64), "audio/wav")},
            headers={"X-API-Key": KEY},
            timeout=300,
        )
        assert heard.status_code == 200, heard.text
        assert "elephant" in heard.json()["text"].lower()
        with connect(ws_url, open_timeout=30, max_size=None) as ws:
            ws.send(json.dumps({"type": "synthesize", "text": SENTENCE, "id": "s"}))
            assert json.loads(ws.recv(timeout=300))["type"] == "audio"
        return audio_b64

    try:
        configure_logging("gateway", "INFO", "json")
        capfd.readouterr()
        audio_b64 = run()
        info = capfd.readouterr().err
        configure_logging("gateway", "DEBUG", "json")
        run()
        debug = capfd.readouterr().err
    finally:
        logging.getLogger().handlers[:] = []
        logging.getLogger().setLevel(logging.WARNING)
    assert info.count("\n") > 5, "the run logged at INFO"
    for secret in (KEY, "elephant", "Elephant", audio_b64[:64]):
        assert secret not in info, secret
    assert KEY not in debug
    record("log_audit", "gateway+brokers", {"info_lines": info.count("\n"), "debug_lines": debug.count("\n")})


TRAVERSAL = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "af_heart\x00.npz",
    "..\\..\\windows",
    "%2e%2e%2fetc",
    "a/../../b",
]


@pytest.mark.parametrize("name", TRAVERSAL)
def test_voice_and_model_names_cannot_walk_the_filesystem(keyed_gateway: tuple[FastAPI, str], name: str) -> None:
    _, url = keyed_gateway
    auth = {"Authorization": f"Bearer {KEY}"}
    voice = httpx.post(url + "/api/voice/synthesize", json={"text": "hi", "voice": name}, headers=auth, timeout=300)
    assert 400 <= voice.status_code < 500, voice.text
    assert "root:" not in voice.text
    model = httpx.post(
        url + "/v1/audio/transcriptions",
        files={"file": ("../../etc/passwd", b"RIFF0000WAVE", "audio/wav")},
        data={"model": name},
        headers=auth,
        timeout=300,
    )
    assert 400 <= model.status_code < 500, model.text
    speech = httpx.post(url + "/v1/audio/speech", json={"input": "hi", "voice": name}, headers=auth, timeout=300)
    assert 400 <= speech.status_code < 500, speech.text


@pytest.mark.parametrize("service", ["gateway", "stt_broker", "tts_broker"])
def test_every_post_route_enforces_its_size_limit(
    service: str, keyed_gateway: tuple[FastAPI, str], stt_url: str, tts_url: str
) -> None:
    app, gateway = keyed_gateway
    url = {"gateway": gateway, "stt_broker": stt_url, "tts_broker": tts_url}[service]
    paths = [
        path
        for path, operations in httpx.get(url + "/openapi.json", timeout=30).json()["paths"].items()
        if "post" in operations
    ]
    limit = 50 * 1024 * 1024 if service != "tts_broker" else 1024 * 1024
    host, port = url.removeprefix("http://").split(":")
    for path in paths:
        # Declared too large: refused before a byte of the body is read (a raw request: clients refuse
        # to declare a length they do not send).
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(head.encode())
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
        assert status_line.split()[1] == b"413", (service, path, status_line)
    record("size_limits", service, {"post_routes": len(paths), "limit_bytes": limit})
    del app


def test_the_bridge_enforces_its_size_limit(tmp_path: Path) -> None:
    from devkit.mqtt_kit import fast_settings
    from devkit.servers import free_port
    from mqtt_bridge.app import create_app as create_bridge

    settings = fast_settings(f"mqtt://127.0.0.1:{free_port()}", "size", tmp_path / "outbox.sqlite3")
    with serve(create_bridge(settings), ready_path="/healthz") as url:
        big = b'{"text": "' + b"a" * settings.max_upload_bytes + b'"}'
        response = httpx.post(url + "/v1/events", content=big, headers={"content-type": "application/json"}, timeout=60)
        assert response.status_code == 413
