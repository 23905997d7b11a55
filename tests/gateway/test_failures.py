"""Faults between the gateway and the brokers: down, slow, half the replicas gone, upstream errors."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

from devkit.servers import free_port, serve
from gateway.app import create_app
from tests.gateway.conftest import FakeBroker, gateway_settings, slow_stream, wait_for
from voicestack_common.upstream import SERVER_KEEP_ALIVE

FakeBrokers = tuple[FakeBroker, str, FakeBroker, str]


@pytest.fixture
def dead() -> Iterator[TestClient]:
    """A gateway whose brokers are not running."""
    settings = gateway_settings(stt_urls=f"http://127.0.0.1:{free_port()}", tts_urls=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        yield client


def client_for(stt: str, tts: str, **overrides: Any) -> TestClient:
    return TestClient(create_app(gateway_settings(stt_urls=stt, tts_urls=tts, **overrides)))


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/voice/transcribe", {"files": {"file": ("a.wav", b"RIFF....")}, "data": {"language": "en"}}),
        ("POST", "/api/voice/synthesize", {"json": {"text": "hi"}}),
        ("POST", "/api/voice/audio-stream", {"json": {"text": "hi"}}),
        ("GET", "/api/voice/voices", {}),
        ("POST", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy"}}),
        ("POST", "/v1/audio/transcriptions", {"files": {"file": ("a.wav", b"RIFF....")}}),
    ],
)
def test_broker_down_is_503_no_upstream(dead: TestClient, method: str, path: str, kwargs: dict[str, Any]) -> None:
    response = dead.request(method, path, **kwargs)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_upstream"
    assert int(response.headers["Retry-After"]) >= 1


def test_broker_down_shows_in_health_and_readiness(dead: TestClient) -> None:
    health = dead.get("/api/voice/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["sst_healthy"], body["tts_healthy"]) == ("unhealthy", False, False)
    assert "ConnectError" in body["sst_replicas"][0]["error"]
    assert dead.get("/readyz").status_code == 503
    assert dead.get("/healthz").status_code == 200


def test_slow_broker_is_504(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    tts.delay = 2.0
    with client_for(stt_url, tts_url, tts_timeout=0.3, upstream_retries=0) as client:
        started = time.monotonic()
        response = client.post("/api/voice/synthesize", json={"text": "hi"})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert time.monotonic() - started < 1.5


def test_a_stream_that_stalls_is_cut_off(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    tts.answer = lambda path, body: slow_stream([b"RIFF" + b"\0" * 40, b"\0" * 100], pause=2.0)
    app = create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, tts_timeout=0.3))
    with (
        serve(app, ready_path="/healthz") as url,
        httpx.stream("POST", url + "/api/voice/audio-stream", json={"text": "hi"}) as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            b"".join(response.iter_raw())


def test_one_of_two_replicas_dead_is_invisible_to_clients(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    dead_url = f"http://127.0.0.1:{free_port()}"
    with client_for(stt_url, f"{dead_url},{tts_url}", health_interval=60) as client:
        # Start with both marked up, as if the dead one had just died.
        for replica in client.app_state["gateway"].tts.replicas:
            replica.healthy = True
        results = [client.post("/api/voice/synthesize", json={"text": f"n{n}"}) for n in range(6)]
        assert [r.status_code for r in results] == [200] * 6
        assert len(tts.requests) == 6
        health = client.get("/api/voice/health").json()
        assert health["tts_healthy"] is True
        assert {r["url"]: r["healthy"] for r in health["tts_replicas"]} == {dead_url: False, tts_url: True}
        assert 'gateway_upstream_retries_total{upstream="tts"} 1.0' in client.get("/metrics").text


def test_a_replica_marked_down_comes_back_after_a_good_health_check(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts_a, tts_url = fake_brokers
    tts_b = FakeBroker()
    with serve(tts_b.app()) as b_url, client_for(stt_url, f"{tts_url},{b_url}", health_interval=0.2) as client:
        tts_b.ready = False
        wait_for(lambda: not _replica_health(client)[b_url])
        for n in range(4):
            assert client.post("/api/voice/synthesize", json={"text": f"x{n}"}).status_code == 200
        assert (len(tts_a.requests), len(tts_b.requests)) == (4, 0)
        tts_b.ready = True
        wait_for(lambda: _replica_health(client)[b_url])
        for n in range(4):
            client.post("/api/voice/synthesize", json={"text": f"y{n}"})
        assert (len(tts_a.requests), len(tts_b.requests)) == (6, 2)  # round-robin again


def _replica_health(client: TestClient) -> dict[str, bool]:
    return {r["url"]: r["healthy"] for r in client.get("/api/voice/health").json()["tts_replicas"]}


def test_upstream_4xx_passes_through_with_code_message_and_details(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers
    tts.answer = lambda path, body: JSONResponse(
        {"error": {"code": "text_too_long", "message": "the text is 5000 characters long", "details": {"n": 1}}},
        status_code=422,
    )
    with client_for(stt_url, tts_url) as client:
        response = client.post("/api/voice/synthesize", json={"text": "x"})
    assert response.status_code == 422
    assert response.json() == {
        "error": {"code": "text_too_long", "message": "the text is 5000 characters long", "details": {"n": 1}}
    }


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_code"),
    [
        (500, {"error": {"code": "internal_error", "message": "internal server error"}}, 502, "internal_error"),
        (503, {"error": {"code": "saturated", "message": "queue full"}}, 503, "saturated"),
        (504, {"error": {"code": "inference_timeout", "message": "too slow"}}, 504, "inference_timeout"),
        (502, "Bad Gateway", 502, "upstream_error"),
        (404, "Not Found", 404, "upstream_rejected"),
    ],
)
def test_upstream_errors_map_to_statuses(status: int, body: Any, expected_status: int, expected_code: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r".*/readyz").respond(200)
        content: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"text": body}
        mock.post("http://stt.test/v1/transcribe").respond(status, headers={"Retry-After": "7"}, **content)
        with client_for("http://stt.test", "http://tts.test", resolve_replicas=False) as client:
            response = client.post("/api/voice/transcribe", files={"file": ("a.wav", b"RIFF")})
    assert response.status_code == expected_status
    assert response.json()["error"]["code"] == expected_code
    if status == 503:
        assert response.headers["Retry-After"] == "7"


def test_request_id_reaches_the_broker_and_comes_back(fake_brokers: FakeBrokers) -> None:
    stt, stt_url, tts, tts_url = fake_brokers
    with client_for(stt_url, tts_url) as client:
        response = client.post(
            "/api/voice/transcribe", files={"file": ("a.wav", b"RIFF")}, headers={"X-Request-ID": "abc-123"}
        )
        generated = client.post("/api/voice/synthesize", json={"text": "hi"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert stt.requests[-1]["headers"]["x-request-id"] == "abc-123"
    assert tts.requests[-1]["headers"]["x-request-id"] == generated.headers["X-Request-ID"]


def test_missing_guide_voice_falls_back_to_one_the_broker_has(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers

    def answer(path: str, body: bytes) -> Any:
        if b'"af_heart"' in body:
            return JSONResponse(
                {
                    "error": {
                        "code": "unknown_voice",
                        "message": "unknown voice 'af_heart'",
                        "details": {"voices": ["jf_alpha", "jm_kumo"]},
                    }
                },
                status_code=422,
            )
        return JSONResponse(
            {
                "audio_base64": "",
                "audio_sample_rate": 24000,
                "audio_duration_seconds": 0.1,
                "voice": "jf_alpha",
                "speed": 1.0,
            }
        )

    tts.answer = answer
    with client_for(stt_url, tts_url) as client:
        guide = client.post("/api/voice/synthesize", json={"text": "hi", "voice": "af_heart"})
        unknown = client.post("/api/voice/synthesize", json={"text": "hi", "voice": "af_nonexistent"})
    assert guide.status_code == 200
    assert guide.json()["voice"] == "jf_alpha"
    assert unknown.status_code == 200  # the fake knows no other voice errors: passes through as sent
    assert b'"jf_alpha"' in tts.requests[1]["body"]


def test_a_broken_stream_aborts_the_response(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers

    async def broken() -> Any:
        yield b"RIFF" + b"\0" * 40
        raise RuntimeError("engine died")

    tts.answer = lambda path, body: StreamingResponse(broken(), media_type="audio/wav")
    with (
        serve(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url)), ready_path="/healthz") as url,
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url + "/api/voice/audio-stream", json={"text": "hi"}) as response,
    ):
        b"".join(response.iter_raw())


def test_non_json_broker_answer_is_502() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r".*/readyz").respond(200)
        mock.get("http://tts.test/v1/voices").respond(200, text="<html>proxy login</html>")
        with client_for("http://stt.test", "http://tts.test", resolve_replicas=False) as client:
            response = client.get("/api/voice/voices")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_invalid_response"


def test_plain_text_errors_from_a_proxy_keep_their_message() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r".*/readyz").respond(200)
        mock.post("http://tts.test/v1/synthesize").mock(return_value=httpx.Response(400, text="Invalid request"))
        with client_for("http://stt.test", "http://tts.test", resolve_replicas=False) as client:
            response = client.post("/api/voice/synthesize", json={"text": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "upstream_rejected", "message": "Invalid request"}


def test_an_event_stream_cut_mid_way_ends_with_an_in_band_error(fake_brokers: FakeBrokers) -> None:
    _, stt_url, tts, tts_url = fake_brokers

    async def broken() -> Any:
        yield b'data: {"type": "speech.audio.delta", "audio": "AAAA"}\n\n'
        yield b'data: {"type": "speech.audio.de'  # the replica dies inside an event
        raise RuntimeError("engine died")

    tts.answer = lambda path, body: StreamingResponse(broken(), media_type="text/event-stream")
    body = {"model": "tts-1", "input": "hi", "voice": "alloy", "stream_format": "sse"}
    with (
        serve(create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url)), ready_path="/healthz") as url,
        httpx.stream("POST", url + "/v1/audio/speech", json=body) as response,
    ):
        assert response.status_code == 200
        text = b"".join(response.iter_raw()).decode()  # a complete response: no protocol error
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[-1].startswith("data: ")
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["type"] == "error"
    assert last["error"]["code"] == "upstream_unavailable"


def test_an_answer_that_trickles_past_the_timeout_is_504(fake_brokers: FakeBrokers) -> None:
    # Each piece comes well within the read timeout, the whole answer long after it.
    _, stt_url, tts, tts_url = fake_brokers
    answer = json.dumps(
        {"audio_base64": "", "audio_sample_rate": 24000, "audio_duration_seconds": 0.1, "voice": "af", "speed": 1.0}
    ).encode()
    pieces = [answer[i : i + 8] for i in range(0, len(answer), 8)]
    tts.answer = lambda path, body: slow_stream(pieces, pause=0.2, media_type="application/json")
    with client_for(stt_url, tts_url, tts_timeout=1.0, upstream_retries=0, health_interval=60) as client:
        response = client.post("/api/voice/synthesize", json={"text": "hi"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


class ClosingBroker(socketserver.ThreadingTCPServer):
    """A raw HTTP/1.1 TTS broker on loopback that closes the connection instead of answering the first
    ``drops`` requests for its voices (as a server closing an idle keep-alive connection does when a
    request arrives on it in the same instant); everything else gets 200 on a kept-alive connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen: list[tuple[int, str]] = []  # (connection number, request line)
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _ClosingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ClosingHandler(socketserver.StreamRequestHandler):
    server: ClosingBroker

    def handle(self) -> None:
        self.server.connections += 1
        connection = self.server.connections
        while head := self.rfile.readline():
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            line = head.decode().strip()
            self.server.seen.append((connection, line))
            if "/v1/voices" in line and self.server.drops:
                self.server.drops -= 1
                return  # closed, no answer
            body = json.dumps(
                {"voices": ["af_heart"], "default_voice": "af_heart", "service": "Kokoro TTS", "status": "ready"}
            ).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            self.wfile.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))


@contextlib.contextmanager
def closing_broker(drops: int) -> Iterator[ClosingBroker]:
    server = ClosingBroker(drops)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_connection_closed_under_an_idempotent_request_is_redialled_once(fake_brokers: FakeBrokers) -> None:
    _, stt_url, _, _ = fake_brokers
    with closing_broker(drops=1) as broker, client_for(stt_url, broker.url, health_interval=60) as client:
        response = client.get("/api/voice/voices")
        assert response.status_code == 200, response.text
        voices = [(number, line) for number, line in broker.seen if "/v1/voices" in line]
        assert len(voices) == 2
        assert voices[0][0] != voices[1][0]  # the second try came on a new connection
        metrics = client.get("/metrics").text
        assert 'gateway_upstream_retries_total{upstream="tts"} 1.0' in metrics
        assert 'gateway_upstream_requests_total{outcome="dropped",upstream="tts"} 1.0' in metrics


def test_a_replica_that_drops_the_redial_too_is_502_after_two_tries(fake_brokers: FakeBrokers) -> None:
    _, stt_url, _, _ = fake_brokers
    with closing_broker(drops=5) as broker, client_for(stt_url, broker.url, health_interval=60) as client:
        response = client.get("/api/voice/voices")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"
        assert sum("/v1/voices" in line for _, line in broker.seen) == 2
        assert broker.drops == 3


def test_pooled_connections_expire_before_the_services_close_them() -> None:
    """The keep-alive race's other half: an idle connection leaves the gateway's pool before any of our
    servers (or a plain uvicorn, 5 s) would close it."""
    import uvicorn

    with client_for("http://127.0.0.1:1", "http://127.0.0.1:1", health_interval=60) as client:
        gateway = client.app_state["gateway"]
        for upstream in (gateway.stt, gateway.tts):
            pool = upstream.client._transport._pool  # type: ignore[attr-defined]
            assert pool._keepalive_expiry < min(SERVER_KEEP_ALIVE, uvicorn.Config(app=None).timeout_keep_alive)
