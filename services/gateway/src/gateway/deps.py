"""Typed dependencies: the lifespan's resources, authentication, rate limits, content-type checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from gateway.auth import ApiKeys, presented_key
from gateway.events import EventSender
from gateway.health import HealthMonitor
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimited, RateLimiter
from gateway.settings import GatewaySettings
from gateway.upstream import Upstream
from voicestack_common.errors import ClientError, UnsupportedMediaType
from voicestack_common.jsonbody import loads_bounded

Operation = Literal["transcribe", "synthesize"]
SESSION_HEADER = "X-Session-ID"


@dataclass(frozen=True, slots=True)
class Gateway:
    """Everything the lifespan opens, as routes and the WebSocket reach it."""

    settings: GatewaySettings
    stt: Upstream
    tts: Upstream
    events: EventSender
    monitor: HealthMonitor
    keys: ApiKeys
    limits: dict[str, RateLimiter]
    metrics: GatewayMetrics

    def charge(self, operation: Operation, caller: str, cost: int = 1) -> None:
        """Take from the caller's allowance for ``operation`` (raises 429 when it is used up)."""
        try:
            self.limits[operation].acquire(caller, cost)
        except RateLimited:
            self.metrics.rate_limited.labels(operation).inc()
            raise


def get_gateway(connection: HTTPConnection) -> Gateway:
    """The lifespan's resources (for HTTP requests and WebSockets alike)."""
    gateway: Gateway = connection.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def authenticate(request: Request, gateway: GatewayDep) -> str:
    """The caller id the API-key middleware found (checked again here for routes it does not cover)."""
    caller = getattr(request.state, "caller", None)
    if isinstance(caller, str):
        return caller
    return gateway.keys.caller(presented_key(request.headers), request.client.host if request.client else None)


CallerDep = Annotated[str, Depends(authenticate)]


def limit_transcribe(gateway: GatewayDep, caller: CallerDep) -> None:
    """One transcription from the caller's allowance."""
    gateway.charge("transcribe", caller)


def limit_synthesize(gateway: GatewayDep, caller: CallerDep) -> None:
    """One synthesis from the caller's allowance."""
    gateway.charge("synthesize", caller)


def session_id(request: Request) -> str | None:
    """A client-chosen session id (``X-Session-ID``), carried into events."""
    value = request.headers.get(SESSION_HEADER, "").strip()
    return value[:128] or None


def content_type(request: Request) -> str:
    """The body's media type, lower-case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(request: Request) -> None:
    """JSON bodies only (a body without a type, or ``text/plain`` as ``fetch`` sends it, counts)."""
    media = content_type(request)
    if media in ("", "text/plain", "application/json") or media.endswith("+json"):
        return
    raise UnsupportedMediaType(f"expected application/json, got {media}")


def require_multipart(request: Request) -> None:
    """Multipart uploads only."""
    media = content_type(request)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"expected multipart/form-data, got {media or 'no Content-Type'}")


SessionDep = Annotated[str | None, Depends(session_id)]


def check_json(body: bytes) -> None:
    """A JSON body that parses, or a 400 with a specific code (FastAPI's own is a generic 422)."""
    if not body.strip():
        raise ClientError("the request has no body: send JSON", code="empty_body")
    try:
        loads_bounded(body)
    except UnicodeDecodeError:
        raise UnsupportedMediaType("the body is not valid UTF-8", code="invalid_encoding") from None
    except ValueError as exc:
        raise ClientError(f"the body is not valid JSON: {exc}", code="invalid_json") from None


class JsonBodyRoute(APIRoute):
    """Reads an untyped or ``text/plain`` body as JSON (``fetch`` with a string body sends
    ``text/plain``) and checks that a JSON body parses before FastAPI reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the Content-Type rewrite and the syntax check."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if request.method != "POST":
                return await handler(request)
            media = content_type(request)
            if media in ("", "text/plain"):
                headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                request = Request({**request.scope, "headers": headers}, request.receive)
                media = "application/json"
            if media == "application/json" or media.endswith("+json"):
                check_json(await request.body())
            return await handler(request)

        return route
