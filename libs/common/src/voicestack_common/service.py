"""The skeleton every service's app factory starts from."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from voicestack_common.body_limit import BodyLimitMiddleware
from voicestack_common.errors import error_body, install_error_handlers
from voicestack_common.logging import RequestIdMiddleware
from voicestack_common.metrics import HttpMetrics, HttpMetricsMiddleware, metrics_endpoint
from voicestack_common.settings import ServiceSettings
from voicestack_common.upstream import SERVER_KEEP_ALIVE


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports: ready or not, and why, check by check."""

    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)


ReadinessProbe = Callable[[Request], Awaitable[Readiness]]


def create_service_app(
    *,
    title: str,
    version: str,
    settings: ServiceSettings,
    namespace: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    readiness: ReadinessProbe,
    description: str = "",
    outer: Sequence[Middleware] = (),
    guards: Sequence[Middleware] = (),
) -> FastAPI:
    """A FastAPI app with error handlers, request ids, metrics, /healthz, /readyz and /metrics.

    Middleware runs in this order, outermost first: ``outer`` (CORS: even refusals carry its
    headers), request id, metrics, ``guards`` (host and key checks: refusals are logged and
    counted, and come before any body is read), body limit.
    """
    http_metrics = HttpMetrics(CollectorRegistry(), namespace)
    middleware = [
        *outer,
        Middleware(RequestIdMiddleware),
        Middleware(HttpMetricsMiddleware, metrics=http_metrics),
        *guards,
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes),
    ]
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan, middleware=middleware)
    app.state.http_metrics = http_metrics
    app.state.settings = settings
    app.state.started_at = time.time()
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process serves HTTP")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "service": title,
            "version": version,
            "uptime_seconds": round(time.time() - app.state.started_at, 3),
        }

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: model loaded, dependencies reachable",
        responses={503: {"description": "Not ready; `checks` says why"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        state = await readiness(request)
        body = {"status": "ready" if state.ready else "not_ready", "service": title, "checks": state.checks}
        if not state.ready:
            body.update(error_body("not_ready", "the service is not ready"))
        return JSONResponse(body, status_code=200 if state.ready else 503)

    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
        include_in_schema=True,
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    return app


S = TypeVar("S", bound=ServiceSettings)


def serve(
    name: str,
    settings_class: type[S],
    factory: Callable[[S], FastAPI],
    *,
    host: str | None = None,
    port: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    uvicorn_options: Callable[[S], dict[str, Any]] | None = None,
) -> None:
    """Run a service under uvicorn: settings from the environment (``host``, ``port`` and any other
    ``overrides`` given on the command line win), logging set up.

    ``uvicorn_options`` derives extra uvicorn settings from the service's settings.
    """
    import uvicorn

    from voicestack_common.logging import configure_logging

    given = {"host": host, "port": port, **(overrides or {})}
    settings = settings_class(**{key: value for key, value in given.items() if value is not None})
    configure_logging(name, settings.log_level, settings.log_format)
    uvicorn.run(
        factory(settings),
        host=settings.host,
        port=getattr(settings, "port"),  # noqa: B009
        log_config=None,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=SERVER_KEEP_ALIVE,
        **(uvicorn_options(settings) if uvicorn_options else {}),
    )
