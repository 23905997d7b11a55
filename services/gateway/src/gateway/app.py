"""The gateway's app factory (``uvicorn --factory gateway.app:create_app``)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway import __version__
from gateway.auth import API_KEY_HEADER, OPEN_PATHS, PROTECTED_PREFIXES, ApiKeyMiddleware, ApiKeys
from gateway.conversations.client import ConversationClient
from gateway.conversations.state import Conversations
from gateway.deps import Gateway
from gateway.events import EventSender
from gateway.health import BridgeProbe, HealthMonitor
from gateway.metrics import GatewayMetrics
from gateway.middleware import TrustedHostMiddleware
from gateway.ratelimit import RateLimiter, SessionLimit
from gateway.replicas import ReplicaSet
from gateway.routes import conversations as conversation_routes
from gateway.routes import live, models, openai, realtime, voice, ws
from gateway.routes.page import page_router
from gateway.settings import GatewaySettings, split_list
from gateway.voices import VoiceCatalog
from voicestack_common.service import Readiness, create_service_app
from voicestack_common.upstream import POOL_KEEP_ALIVE

logger = logging.getLogger(__name__)

# Seconds queued events get to reach the bridge at shutdown before they count as dropped.
EVENTS_FLUSH_SECONDS = 2.0

DESCRIPTION = """voicestack's public entry point, in front of the STT and TTS brokers.

* `/api/voice/*`: the integration guide's REST endpoints.
* `/v1/audio/transcriptions`, `/v1/audio/speech`, `/v1/models`: OpenAI-compatible, so the `openai` SDK works
  unchanged; `model` picks one of the models `/v1/models` lists.
* `WS /api/voice/ws/chat` (not listed below: OpenAPI has no WebSockets): JSON messages
  `{"type": "transcribe", "audio_base64", "language"}`, `{"type": "synthesize", "text", "voice", "lang_code",
  "speed"}` and `{"type": "ping"}`, each with an optional `id`; answers `transcription`
  (`text, language, confidence, duration_seconds, model`), `audio` (`audio_base64, duration_seconds,
  sample_rate, voice, speed`), `pong` and `error` (`{"error": {"code", "message"}}`), echoing the `id`.
  Several requests may run at once; a bad message gets an `error` and the socket stays open.

When API keys are configured, every `/api/voice/*` and `/v1/*` call needs `Authorization: Bearer KEY`
or `X-API-Key: KEY` (`/api/voice/health`, `/healthz`, `/readyz` and `/metrics` stay open).
Errors: `{"error": {"code": ..., "message": ...}}`; a broker's error passes through with its status and code.
"""


def _client(settings: GatewaySettings, timeout: float) -> httpx.AsyncClient:
    """One pooled client per broker; the environment's proxies never apply to internal calls."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=settings.connect_timeout),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
            keepalive_expiry=POOL_KEEP_ALIVE,
        ),
        trust_env=False,
    )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway; the broker clients and background tasks live in the lifespan."""
    settings = settings or GatewaySettings()
    keys = ApiKeys(settings.keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        metrics = GatewayMetrics(app.state.http_metrics.registry)
        retry_after = math.ceil(settings.health_interval)
        stt = ReplicaSet(
            "stt",
            settings.stt_replicas,
            _client(settings, settings.stt_timeout),
            metrics,
            settings.upstream_retries,
            retry_after,
            max_body_bytes=settings.stt_max_request_bytes,
        )
        tts = ReplicaSet(
            "tts",
            settings.tts_replicas,
            _client(settings, settings.tts_timeout),
            metrics,
            settings.upstream_retries,
            retry_after,
            max_body_bytes=settings.tts_max_request_bytes,
        )
        conversation = (
            ReplicaSet(
                "conversation",
                settings.conversation_replicas,
                _client(settings, settings.conversation_timeout),
                metrics,
                settings.upstream_retries,
                retry_after,
            )
            if settings.conversation_replicas
            else None
        )
        conversations = Conversations(ConversationClient(conversation))
        events_client = (
            httpx.AsyncClient(timeout=settings.events_timeout, trust_env=False) if settings.events_url else None
        )
        events = EventSender(
            settings.events_url,
            events_client,
            metrics,
            queue_size=settings.events_queue_size,
            synthesis=settings.events_synthesis,
        )
        monitor = HealthMonitor(
            {"stt": stt, "tts": tts} | ({"conversation": conversation} if conversation else {}),
            interval=settings.health_interval,
            timeout=settings.health_timeout,
            cache_seconds=settings.health_cache_seconds,
            down_after=settings.health_down_after,
            resolve=settings.resolve_replicas,
            resolve_interval=settings.resolve_interval,
            bridge=BridgeProbe(settings.events_url, events_client) if events_client is not None else None,
        )
        limits = {
            op: RateLimiter(op, rate, settings.rate_limit_burst)
            for op, rate in (
                ("transcribe", settings.transcribe_rate_limit),
                ("synthesize", settings.synthesize_rate_limit),
            )
        }
        gateway = Gateway(
            settings,
            stt,
            tts,
            events,
            monitor,
            keys,
            limits,
            metrics,
            live_sessions=SessionLimit(settings.live_max_sessions_per_key, "live transcription sessions"),
            realtime_sessions=SessionLimit(settings.realtime_max_sessions, "Realtime sessions"),
            voices=VoiceCatalog(tts),
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await monitor.resolve_all()
            await monitor.check_all()  # readiness is known before the first request
            tasks = [asyncio.create_task(monitor.run()), asyncio.create_task(events.run())]
            logger.info(
                "gateway ready",
                extra={
                    "stt": [r.url for r in stt.replicas],
                    "tts": [r.url for r in tts.replicas],
                    "auth": gateway.keys.enabled,
                    "events": events.url or None,
                },
            )
            yield {"gateway": gateway, "conversations": conversations}
        finally:
            await conversations.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await monitor.close()
            await stt.close_probes()
            await tts.close_probes()
            await events.close(EVENTS_FLUSH_SECONDS)
            for client in (stt.client, tts.client, events_client, conversation.client if conversation else None):
                if client is not None:
                    await client.aclose()

    async def readiness(request: Request) -> Readiness:
        gateway: Gateway = request.state.gateway
        checks: dict[str, Any] = {
            name: {"healthy_replicas": len(upstream.healthy), "replicas": len(upstream.replicas)}
            for name, upstream in (("stt", gateway.stt), ("tts", gateway.tts))
        }
        checks["events_pending"] = gateway.events.pending
        ready = all(check["healthy_replicas"] for check in (checks["stt"], checks["tts"]))
        return Readiness(ready=ready, checks=checks)

    origins = split_list(settings.cors_origins)
    cors = Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app = create_service_app(
        title="gateway",
        version=__version__,
        settings=settings,
        namespace="gateway",
        lifespan=lifespan,
        readiness=readiness,
        description=DESCRIPTION,
        outer=[cors] if origins else [],
        guards=[
            Middleware(
                TrustedHostMiddleware,
                allowed_hosts=split_list(settings.trusted_hosts),
                allowed_origins=split_list(settings.cors_origins),
            ),
            Middleware(ApiKeyMiddleware, keys=keys),
        ],
    )
    app.include_router(voice.router, prefix="/api/voice")
    app.include_router(ws.router, prefix="/api/voice")
    app.include_router(live.router, prefix="/api/voice")
    app.include_router(openai.router, prefix="/v1")
    app.include_router(models.router, prefix="/v1")
    app.include_router(conversation_routes.router, prefix="/api/conversations")
    app.include_router(conversation_routes.seeds)
    app.include_router(realtime.router, prefix="/v1")
    if settings.page:
        app.include_router(page_router())
    declare_security(app)
    return app


def declare_security(app: FastAPI) -> None:
    """The OpenAPI document declares both ways to send a key, on every route that may need one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer KEY`"},
            "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
        }
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(PROTECTED_PREFIXES) or path in OPEN_PATHS:
                continue
            for operation in operations.values():
                # Either scheme; an empty requirement: callable without a key when none is configured.
                operation["security"] = [{"bearer": []}, {"apiKey": []}, {}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
