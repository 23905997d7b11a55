"""Drains the outbox into MQTT: a row leaves the outbox only after its PUBACK (QoS 0: once sent)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt

from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.mqtt import MqttLink
from mqtt_bridge.outbox import Outbox, StoredEvent
from mqtt_bridge.topics import Topics

logger = logging.getLogger(__name__)

# While idle, look for work at least this often: a wake-up lost to a race costs at most this delay.
IDLE_WAIT = 1.0
# Forgetting old event ids is housekeeping; every few minutes keeps the table small.
PRUNE_INTERVAL = 300.0


class OutboxPublisher:
    """A connection worker: claim a batch, publish it, delete what the broker acknowledged."""

    def __init__(
        self, outbox: Outbox, link: MqttLink, topics: Topics, metrics: BridgeMetrics, batch: int, timeout: float
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.topics = topics
        self.metrics = metrics
        self.batch = batch
        self.timeout = timeout
        self._pruned_at = float("-inf")

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish until the connection fails (then raise, so the link reconnects)."""
        requeued = await self.outbox.requeue()
        if requeued:
            logger.info("re-sending events the broker had not acknowledged", extra={"events": requeued})
        while True:
            claimed = await self.outbox.claim(self.batch)
            if not claimed:
                await self._housekeeping()
                await self.outbox.wait_for_new(IDLE_WAIT)
                continue
            await self._publish_batch(client, claimed)

    async def _publish_batch(self, client: aiomqtt.Client, claimed: list[StoredEvent]) -> None:
        # Concurrent publishes keep the in-flight window full; paho still sends them in order.
        results = await asyncio.gather(*(self._publish(client, event) for event in claimed), return_exceptions=True)
        delivered = [event for event, result in zip(claimed, results, strict=True) if result is None]
        failed = [(event, result) for event, result in zip(claimed, results, strict=True) if result is not None]
        await self.outbox.ack([event.seq for event in delivered])
        now = time.time()
        for event in delivered:
            self.metrics.published.labels(type=event.kind).inc()
            self.metrics.delivery.observe(max(0.0, now - event.accepted_at))
        if failed:
            self.metrics.publish_failures.inc(len(failed))
            await self.outbox.release([event.seq for event, _ in failed])
            error = failed[0][1]
            if isinstance(error, aiomqtt.MqttError):
                raise error
            raise aiomqtt.MqttError(f"publishing failed: {error!r}") from error

    async def _publish(self, client: aiomqtt.Client, event: StoredEvent) -> None:
        if event.topic is not None:  # a message of POST /v1/publish: exactly as it was asked for
            await client.publish(event.topic, event.payload, qos=event.qos, retain=event.retain, timeout=self.timeout)
            return
        await client.publish(
            self.topics.event(event.kind),
            event.payload,
            qos=1,
            properties=self.link.json_properties(),
            timeout=self.timeout,
        )

    async def _housekeeping(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_INTERVAL:
            return
        self._pruned_at = time.monotonic()
        if pruned := await self.outbox.prune():
            logger.debug("forgot delivered event ids", extra={"ids": pruned})
