"""The conversation service's app factory (``uvicorn --factory conversation.app:create_app``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from conversation import __version__
from conversation.db import create_engine, current_revision, migrate
from conversation.deliveries import Deliveries
from conversation.deps import Service
from conversation.metrics import ConversationMetrics
from conversation.responders import build_responders
from conversation.routes import conversations, deliveries
from conversation.settings import ConversationSettings
from conversation.store import Store
from conversation.tools import Toolbox, load_tools
from voicestack_common.service import Readiness, create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION = """Conversations and their messages (SQLite or PostgreSQL), and the responders that answer
(`local`, `echo`, `openai`, `webhook`), and seed 000's pending reply audio (`/v1/deliveries`). Internal: the
gateway calls it, passing the caller's identity in `X-Voicestack-Owner`; clients use the gateway's
`/api/conversations`."""


async def _purge_loop(service: Service) -> None:
    """Delete conversations past the retention period, now and every ``purge_interval``."""
    settings = service.settings
    while True:
        try:
            purged = await service.store.purge(settings.retention_days)
            if purged:
                service.metrics.purged.inc(purged)
                logger.info("purged %d conversations older than %g days", purged, settings.retention_days)
        except Exception:
            logger.exception("retention purge failed")
        await asyncio.sleep(settings.purge_interval)


def create_app(settings: ConversationSettings | None = None) -> FastAPI:
    """Build the service; the database engine, migrations and responders live in the lifespan."""
    settings = settings or ConversationSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        toolbox = None
        if settings.tools_file is not None:
            toolbox = Toolbox(
                load_tools(settings.tools_file),
                bridge_url=settings.mqtt_bridge_url,
                timeout=settings.tool_timeout,
                max_result_chars=settings.tool_max_result_chars,
            )
        engine = create_engine(settings.database_url)
        responders = build_responders(settings, app.state.http_metrics.registry)
        tasks: list[asyncio.Task[None]] = []
        try:
            for responder in responders.values():
                await responder.start()
            if settings.migrate_on_start:
                await migrate(engine)
            store = Store(engine)
            service = Service(settings, store, responders, app.state.conversation_metrics, Deliveries(store), toolbox)
            if settings.retention_days > 0:
                tasks.append(asyncio.create_task(_purge_loop(service)))
            logger.info(
                "conversation service ready",
                extra={
                    "database": engine.url.render_as_string(hide_password=True),
                    "responders": list(responders),
                    "tools": list(toolbox.tools) if toolbox else [],
                },
            )
            yield {"service": service}
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for responder in responders.values():
                await responder.aclose()
            if toolbox is not None:
                await toolbox.aclose()
            await engine.dispose()

    async def readiness(request: Request) -> Readiness:
        service: Service = request.state.service
        try:
            await service.store.ping()
            revision = await current_revision(service.store.engine)
        except Exception as exc:
            return Readiness(ready=False, checks={"database": f"unreachable: {type(exc).__name__}"})
        return Readiness(
            ready=revision is not None,
            checks={"database": "ok", "schema_revision": revision, "responders": list(service.responders)},
        )

    app = create_service_app(
        title="conversation",
        version=__version__,
        settings=settings,
        namespace="conversation",
        lifespan=lifespan,
        readiness=readiness,
        description=DESCRIPTION,
    )
    app.state.settings = settings
    app.state.conversation_metrics = ConversationMetrics(app.state.http_metrics.registry)
    app.include_router(conversations.router, prefix="/v1")
    app.include_router(deliveries.router, prefix="/v1")
    return app
