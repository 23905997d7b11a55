"""Typed dependencies: the lifespan's resources, authentication, rate limits, the multipart check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from gateway.auth import ApiKeys, presented_key
from gateway.events import EventSender
from gateway.health import HealthMonitor
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimited, RateLimiter, SessionLimit
from gateway.replicas import ReplicaSet
from gateway.settings import GatewaySettings
from gateway.voices import VoiceCatalog
from voicestack_common.errors import UnsupportedMediaType
from voicestack_common.jsonbody import media_type

Operation = Literal["transcribe", "synthesize"]
SESSION_HEADER = "X-Session-ID"


@dataclass(frozen=True, slots=True)
class Gateway:
    """Everything the lifespan opens, as routes and the WebSocket reach it."""

    settings: GatewaySettings
    stt: ReplicaSet
    tts: ReplicaSet
    events: EventSender
    monitor: HealthMonitor
    keys: ApiKeys
    limits: dict[str, RateLimiter]
    metrics: GatewayMetrics
    live_sessions: SessionLimit
    """Live transcription sessions per caller: ``/api/voice/ws/transcribe`` and the chat voice loop."""
    realtime_sessions: SessionLimit
    """``/v1/realtime`` sessions per caller."""
    voices: VoiceCatalog
    """The TTS broker's voices, cached: which voice speaks a reply in the user's language."""

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


def require_multipart(request: Request) -> None:
    """Multipart uploads only."""
    media = media_type(request.headers)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"expected multipart/form-data, got {media or 'no Content-Type'}")


SessionDep = Annotated[str | None, Depends(session_id)]
