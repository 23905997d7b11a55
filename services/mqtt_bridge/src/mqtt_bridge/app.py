"""The MQTT bridge's app factory (``uvicorn --factory mqtt_bridge.app:create_app``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from mqtt_bridge import __version__
from mqtt_bridge.bridge import Bridge
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.routes import events, publish
from mqtt_bridge.settings import BridgeSettings
from voicestack_common.service import Readiness, create_service_app

logger = logging.getLogger(__name__)


def create_app(settings: BridgeSettings | None = None) -> FastAPI:
    """Build the bridge; the outbox opens and the MQTT link starts in the lifespan."""
    settings = settings or BridgeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # The bridge holds the outbox, the httpx client, the MQTT link task and the health poller.
        bridge = Bridge(settings, app.state.bridge_metrics, __version__)
        try:
            await bridge.start()
            logger.info(
                "mqtt bridge started",
                extra={
                    "outbox": str(settings.outbox_path),
                    "prefix": settings.topic_prefix,
                    "services": sorted(settings.services),
                },
            )
            yield {"bridge": bridge}
        finally:
            await bridge.stop()

    async def readiness(request: Request) -> Readiness:
        bridge: Bridge = request.state.bridge
        ready, checks = bridge.readiness()
        return Readiness(ready=ready, checks=checks)

    app = create_service_app(
        title="mqtt-bridge",
        version=__version__,
        settings=settings,
        namespace="mqtt_bridge",
        lifespan=lifespan,
        readiness=readiness,
        description="Publishes the stack's transcripts, synthesis, reply and tool call events, allow-listed "
        "messages of assistant tools and health to MQTT from a durable outbox, with Home Assistant discovery "
        "and MQTT commands.",
    )
    app.state.bridge_metrics = BridgeMetrics(app.state.http_metrics.registry)
    app.include_router(events.router)
    app.include_router(publish.router)
    return app
