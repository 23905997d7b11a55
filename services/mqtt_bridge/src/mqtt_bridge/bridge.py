"""Everything the bridge runs, wired together, started and stopped in order by the lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from mqtt_bridge.commands import CommandService
from mqtt_bridge.discovery import Discovery
from mqtt_bridge.gateway import GatewayClient
from mqtt_bridge.health import HealthPoller
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.mqtt import MqttLink
from mqtt_bridge.outbox import Outbox
from mqtt_bridge.publisher import OutboxPublisher
from mqtt_bridge.publishing import PublishPolicy
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.topics import Topics
from voicestack_common.upstream import POOL_KEEP_ALIVE

logger = logging.getLogger(__name__)

# After ``stop`` the link needs a moment to publish ``offline`` and disconnect; then it is cancelled.
STOP_GRACE = 5.0


class Bridge:
    """The outbox, the MQTT link and its workers, the health poller, discovery, commands, the publish policy."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics, version: str) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topics = Topics(settings.topic_prefix, settings.ha_discovery_prefix)
        self.outbox = Outbox(
            settings.outbox_path,
            synchronous=settings.outbox_sync,
            max_events=settings.outbox_max_events,
            dedup_retention=settings.dedup_retention,
        )
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=POOL_KEEP_ALIVE),
        )
        self.publish_policy = PublishPolicy(settings.publish_allow, self.topics.reserved)
        self.link = MqttLink(settings, self.topics, metrics)
        self.publisher = OutboxPublisher(
            self.outbox, self.link, self.topics, metrics, batch=settings.publish_batch, timeout=settings.mqtt_timeout
        )
        self.link.add_worker(self.publisher.run)
        self.health = HealthPoller(settings, self.http, self.link, self.topics, metrics)
        self.discovery = Discovery(settings, self.link, self.topics, version) if settings.ha_discovery else None
        self.commands: CommandService | None = None
        if settings.commands:
            gateway = GatewayClient(
                self.http,
                settings.gateway_url,
                timeout=settings.command_timeout,
                max_audio_bytes=settings.command_max_bytes,
                allow_urls=settings.command_audio_urls,
                url_hosts=settings.audio_url_hosts,
                api_key=settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None,
            )
            self.commands = CommandService(
                self.link,
                self.topics,
                gateway,
                metrics,
                concurrency=settings.command_concurrency,
                max_bytes=settings.command_max_bytes,
            )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the outbox, then connect and poll in the background."""
        await self.outbox.open()
        self.metrics.watch_outbox(lambda: self.outbox.stats)
        stats = self.outbox.stats
        if stats.depth:
            logger.info("events from the last run are waiting", extra={"events": stats.depth})
        if self.discovery is not None:
            await self.discovery.start()
        self._tasks = [
            asyncio.create_task(self.link.run(), name="mqtt-link"),
            asyncio.create_task(self.health.run(), name="health-poller"),
        ]

    async def stop(self) -> None:
        """Stop polling and commands, announce ``offline``, disconnect, close the outbox."""
        for task in self._tasks[1:]:
            task.cancel()
        if self.commands is not None:
            await self.commands.close()
        if self.discovery is not None:
            await self.discovery.close()
        await self.link.stop()
        if self._tasks:
            await asyncio.wait({self._tasks[0]}, timeout=STOP_GRACE)
            self._tasks[0].cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.metrics.watch_outbox(lambda: None)
        await self.http.aclose()
        await self.outbox.close()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when connected to the broker; the checks say why not."""
        checks = self.link.state()
        try:
            stats = self.outbox.stats
        except RuntimeError:
            return False, {**checks, "outbox": "closed"}
        oldest = stats.oldest_accepted_at
        checks.update(
            {"outbox_depth": stats.depth, "outbox_oldest_seconds": round(time.time() - oldest, 3) if oldest else 0.0}
        )
        return self.link.connected, checks
