"""What the caller gets wrong: size, content type, JSON, WebSocket messages."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from tests.gateway.conftest import FakeBroker, gateway_settings
from tests.jsonpolicy import DEEP, check_accepted, check_refusals

LIMIT = 4096


@pytest.fixture
def client(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> Iterator[TestClient]:
    _, stt_url, _, tts_url = fake_brokers
    settings = gateway_settings(stt_urls=stt_url, tts_urls=tts_url, max_upload_bytes=LIMIT, ws_max_in_flight=2)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_oversized_upload_is_413_from_content_length(client: TestClient) -> None:
    response = client.post("/api/voice/transcribe", files={"file": ("a.wav", b"\0" * (LIMIT + 1))})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_oversized_chunked_upload_is_413_while_it_streams(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(LIMIT // 512 + 2):
            yield b"\0" * 512

    for path in ("/api/voice/transcribe", "/v1/audio/transcriptions"):
        response = client.post(path, content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413, path


def test_oversized_base64_is_413(client: TestClient) -> None:
    audio = base64.b64encode(b"\0" * (LIMIT * 2)).decode()
    response = client.post("/api/voice/transcribe", json={"audio_base64": audio})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/voice/transcribe", "audio/wav"),
        ("/api/voice/transcribe", "application/x-www-form-urlencoded"),
        ("/api/voice/synthesize", "multipart/form-data; boundary=x"),
        ("/api/voice/audio-stream", "audio/wav"),
        ("/api/voice/synthesize-batch", "application/xml"),
        ("/v1/audio/transcriptions", "application/json"),
        ("/v1/audio/speech", "application/x-www-form-urlencoded"),
    ],
)
def test_wrong_content_type_is_415(client: TestClient, path: str, content_type: str) -> None:
    response = client.post(path, content=b"{}", headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_body"),
        (b"{not json", 400, "invalid_json"),
        (b'{"voice": "jf_alpha"}', 422, "invalid_request"),
        (b'{"text": 5}', 422, "invalid_request"),
        (b'{"text": "hi", "speed": "fast"}', 422, "invalid_request"),
    ],
)
def test_bad_json_bodies(client: TestClient, body: bytes, status: int, code: str) -> None:
    response = client.post("/api/voice/synthesize", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/api/voice/synthesize", "/api/voice/audio-stream", "/v1/audio/speech"])
def test_the_json_body_policy(client: TestClient, path: str) -> None:
    def post(content: bytes, headers: dict[str, str]) -> Any:
        return client.post(path, content=content, headers=headers)

    check_refusals(post, "invalid_request")
    field = "input" if path.startswith("/v1") else "text"
    check_accepted(post, lambda: {field: "Hello there."}, 200)


def test_the_json_body_policy_on_base64_transcription(client: TestClient) -> None:
    def post(content: bytes, headers: dict[str, str]) -> Any:
        return client.post("/api/voice/transcribe", content=content, headers=headers)

    check_refusals(post, "invalid_request")
    audio = base64.b64encode(b"RIFF" + b"\0" * 64).decode()
    check_accepted(post, lambda: {"audio_base64": audio}, 200)


def test_transcribe_needs_a_file_and_valid_base64(client: TestClient) -> None:
    no_file = client.post("/api/voice/transcribe", data={"language": "en"}, files={"other": ("x.txt", b"x")})
    assert (no_file.status_code, no_file.json()["error"]["code"]) == (400, "empty_body")
    bad = client.post("/api/voice/transcribe", json={"audio_base64": "not base64!", "language": "en"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_base64")
    missing = client.post("/api/voice/transcribe", json={"language": "en"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (422, "invalid_request")
    assert "audio_base64" in missing.json()["error"]["message"]


def test_batch_limits(client: TestClient) -> None:
    too_many = client.post("/api/voice/synthesize-batch", json=[{"text": "x"}] * 33)
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (422, "batch_too_large")
    assert client.post("/api/voice/synthesize-batch", json=[]).json() == []
    not_a_list = client.post("/api/voice/synthesize-batch", json={"text": "x"})
    assert not_a_list.status_code == 422


def _ws_answers(client: TestClient, frames: list[str | bytes], count: int) -> list[dict[str, Any]]:
    with client.websocket_connect("/api/voice/ws/chat") as ws:
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_bytes(frame)
            else:
                ws.send_text(frame)
        answers = [ws.receive_json() for _ in range(count)]
        ws.send_text(json.dumps({"type": "ping", "id": "still-open"}))
        assert ws.receive_json() == {"type": "pong", "id": "still-open"}
    return answers


def test_bad_websocket_messages_get_errors_and_the_socket_stays_open(client: TestClient) -> None:
    answers = _ws_answers(
        client,
        [
            "this is not json",
            b"\x00\x01binary",
            json.dumps([1, 2, 3]),
            json.dumps({"type": "dance", "id": "d"}),
            json.dumps({"type": "synthesize", "id": "no-text"}),
            json.dumps({"type": "transcribe", "id": "no-audio"}),
            json.dumps({"type": "transcribe", "id": "bad-b64", "audio_base64": "%%%%"}),
            json.dumps(
                {"type": "transcribe", "id": "big", "audio_base64": base64.b64encode(b"\0" * LIMIT * 2).decode()}
            ),
            json.dumps({"type": "synthesize", "id": "slow", "text": "hello", "speed": "fast"}),
            DEEP.decode(),
        ],
        count=10,
    )
    codes = {a.get("id"): a["error"]["code"] for a in answers}
    assert all(a["type"] == "error" for a in answers)
    assert codes == {
        None: codes[None],
        "d": "unknown_message_type",
        "no-text": "invalid_request",
        "no-audio": "invalid_request",
        "bad-b64": "invalid_base64",
        "big": "payload_too_large",
        "slow": "invalid_request",
    }
    unnamed = [a["error"]["code"] for a in answers if "id" not in a]
    assert sorted(unnamed) == ["invalid_json", "invalid_message", "invalid_message", "json_too_deep"]


def test_websocket_in_flight_limit(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    tts.delay = 0.5
    with (
        TestClient(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, ws_max_in_flight=2))) as client,
        client.websocket_connect("/api/voice/ws/chat") as ws,
    ):
        for n in range(3):
            ws.send_text(json.dumps({"type": "synthesize", "text": f"t{n}", "id": n}))
        answers = [ws.receive_json() for _ in range(3)]
    assert answers[0] == {
        "type": "error",
        "id": 2,
        "error": {"code": "too_many_in_flight", "message": answers[0]["error"]["message"]},
    }
    assert sorted(a["id"] for a in answers[1:]) == [0, 1]
    assert all(a["type"] == "audio" for a in answers[1:])


def test_cors_and_trusted_hosts(fake_brokers: tuple[FakeBroker, str, FakeBroker, str]) -> None:
    _, stt_url, _, tts_url = fake_brokers
    settings = gateway_settings(
        stt_urls=stt_url,
        tts_urls=tts_url,
        cors_origins="https://app.example.com",
        trusted_hosts="testserver,*.example.com",
    )
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/api/voice/synthesize",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        voices = client.get("/api/voice/voices", headers={"Origin": "https://app.example.com"})
        assert "X-Request-ID" in voices.headers["access-control-expose-headers"]
        assert client.get("/healthz", headers={"Host": "api.example.com"}).status_code == 200
        refused = client.get("/api/voice/voices", headers={"Host": "evil.test"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_host"
