"""The service skeleton: JSON errors, request ids, body limits, health and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI, Request, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel

from voicestack_common.errors import InvalidRequest, Saturated
from voicestack_common.logging import JsonFormatter, TextFormatter, request_id_var
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.settings import ServiceSettings


class Body(BaseModel):
    speed: float


def build(ready: bool = True, limit: int = 1000) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {}

    async def readiness(request: Request) -> Readiness:
        return Readiness(ready, {"model_loaded": ready})

    app = create_service_app(
        title="demo",
        version="1",
        settings=ServiceSettings(max_upload_bytes=limit),
        namespace="demo",
        lifespan=lifespan,
        readiness=readiness,
    )

    @app.post("/domain")
    async def domain() -> None:
        raise InvalidRequest("speed must be between 0.25 and 4", code="invalid_speed")

    @app.post("/busy")
    async def busy() -> None:
        raise Saturated("queue full", retry_after=3)

    @app.post("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    @app.post("/json")
    async def body(item: Body) -> Body:
        return item

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(await file.read())}

    return app


@pytest.fixture
def client() -> Any:
    with TestClient(build(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_domain_errors_have_code_and_message(client: TestClient) -> None:
    response = client.post("/domain")
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "invalid_speed", "message": "speed must be between 0.25 and 4"}}


def test_saturation_sends_retry_after(client: TestClient) -> None:
    response = client.post("/busy")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "saturated"


def test_unexpected_errors_hide_the_trace(client: TestClient) -> None:
    response = client.post("/crash")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert "secret" not in response.text


def test_validation_errors_name_the_field(client: TestClient) -> None:
    response = client.post("/json", json={"speed": "fast"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "speed" in error["message"]


def test_unknown_routes_are_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_request_id_is_echoed_or_created(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    # A header that is not a safe token is replaced, not reflected.
    assert client.get("/healthz", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"] != "a b\tc"


def test_upload_over_the_limit_is_413_even_without_content_length(client: TestClient) -> None:
    ok = client.post("/upload", files={"file": ("a.bin", b"x" * 100)})
    assert ok.status_code == 200
    too_big = client.post("/upload", files={"file": ("a.bin", b"x" * 5000)})
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(50):
            yield b"y" * 100

    streamed = client.post("/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_health_readiness_and_metrics() -> None:
    with TestClient(build(ready=False)) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"model_loaded": False}
        client.post("/domain")
        metrics = client.get("/metrics").text
        assert 'demo_errors_total{code="invalid_speed"} 1.0' in metrics
        assert 'demo_http_requests_total{method="POST",route="/domain",status="422"} 1.0' in metrics


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    token = request_id_var.set("rid-1")
    try:
        line = json.loads(JsonFormatter("svc").format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello you"
    assert line["request_id"] == "rid-1"
    assert line["service"] == "svc"


def test_text_log_lines_say_what_the_extras_say() -> None:
    """``voicestack up`` logs text: "service health changed" must say which service and what changed."""
    record = logging.LogRecord("bridge", logging.INFO, __file__, 1, "service health changed", (), None)
    record.__dict__.update({"service": "stt", "from": "healthy", "to": "down"})
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO service health changed (service=stt from=healthy to=down)"


def test_successful_probes_stay_out_of_the_access_log() -> None:
    from voicestack_common.logging import ProbeAccessFilter

    def access(path: str, status: int) -> logging.LogRecord:
        return logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "GET", path, "1.1", status),
            None,
        )

    probe_filter = ProbeAccessFilter()
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert not probe_filter.filter(access("/healthz", 200))
        assert not probe_filter.filter(access("/metrics", 200))
        assert not probe_filter.filter(access("/readyz", 503))  # not ready (yet): the service says why itself
        assert probe_filter.filter(access("/readyz", 500))  # a failing probe is news
        assert probe_filter.filter(access("/v1/transcribe", 200))
        root.setLevel(logging.DEBUG)
        assert probe_filter.filter(access("/healthz", 200))
    finally:
        root.setLevel(level)
