"""The shared request edge: JSON body policy, validation, middleware order, streamed answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from starlette.middleware import Middleware
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from devkit.servers import serve
from tests.jsonpolicy import check_accepted, check_refusals
from voicestack_common.errors import ClientError, UpstreamTimeout, invalid_request
from voicestack_common.jsonbody import MAX_JSON_DEPTH, JsonBodyRoute, parse_json
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.settings import ServiceSettings
from voicestack_common.streaming import CutOffStreamingResponse, StreamCutOff, sse_stream


class Say(BaseModel):
    text: str


class Guard:
    """A pass-through middleware with a name (a stand-in for the gateway's host and key checks)."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {}

    async def readiness(request: Request) -> Readiness:
        return Readiness(True)

    app = create_service_app(
        title="edge",
        version="1",
        settings=ServiceSettings(max_upload_bytes=100_000),
        namespace="edge",
        lifespan=lifespan,
        readiness=readiness,
        outer=[Middleware(Guard, name="outer")],
        guards=[Middleware(Guard, name="guard")],
    )
    router = APIRouter(route_class=JsonBodyRoute)

    @router.post("/say")
    async def say(body: Say) -> Say:
        return body

    @router.get("/cut")
    async def cut() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise StreamCutOff

        return CutOffStreamingResponse(chunks(), media_type="audio/pcm")

    @router.get("/whole")
    async def whole() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"

        return CutOffStreamingResponse(chunks(), media_type="audio/pcm")

    @router.get("/events")
    async def events() -> StreamingResponse:
        async def produce() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "delta", "n": 1}
            raise UpstreamTimeout("too slow", code="inference_timeout")

        return StreamingResponse(sse_stream(produce(), what="test"), media_type="text/event-stream")

    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def url() -> Any:
    with serve(build()) as base_url:
        yield base_url


def test_middleware_runs_in_the_named_order() -> None:
    names = [m.kwargs.get("name", m.cls.__name__) for m in build().user_middleware]  # type: ignore[attr-defined]
    assert names == ["outer", "RequestIdMiddleware", "HttpMetricsMiddleware", "guard", "BodyLimitMiddleware"]


def test_the_policy_on_a_declared_body(url: str) -> None:
    with httpx.Client(base_url=url) as client:

        def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
            return client.post("/say", content=content, headers=headers)

        check_refusals(post, "invalid_request")
        check_accepted(post, lambda: {"text": "hi"}, 200)
        # The connection stays usable after every refusal (nothing recursed, nothing crashed).
        assert client.post("/say", json={"text": "again"}).json() == {"text": "again"}


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert parse_json(json.dumps({"text": "[" * 500 + "{" * 500}).encode()) == {"text": "[" * 500 + "{" * 500}
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ClientError) as deep:
        parse_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert deep.value.code == "json_too_deep"


def test_validation_names_the_first_field_and_lists_all() -> None:
    error = invalid_request(
        [{"loc": ("body", "voice", 0), "msg": "bad"}, {"loc": ("body", "text"), "msg": "Field required"}]
    )
    assert (error.status_code, error.code, error.message) == (422, "invalid_request", "voice.0: bad")
    assert error.details == {
        "errors": [{"loc": ["body", "voice", "0"], "msg": "bad"}, {"loc": ["body", "text"], "msg": "Field required"}]
    }


def test_a_cut_off_stream_is_seen_as_incomplete(url: str) -> None:
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", f"{url}/cut") as response:  # noqa: PT012
        for chunk in response.iter_raw():
            received += chunk
    assert received == b"first"
    assert httpx.get(f"{url}/whole").content == b"first"


def test_sse_reports_errors_in_band(url: str) -> None:
    with httpx.stream("GET", f"{url}/events") as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events == [
        {"type": "delta", "n": 1},
        {"type": "error", "error": {"code": "inference_timeout", "message": "too slow"}},
    ]
