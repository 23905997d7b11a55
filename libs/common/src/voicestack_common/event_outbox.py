"""Speech events from a service to the MQTT bridge, sent in the background and retried.

The bridge answers ``202`` once an event is in its durable outbox; until then
the event waits here, in a bounded in-memory queue, so a request never waits
for the bridge and a bridge restart loses nothing that was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from prometheus_client import CollectorRegistry, Counter

from voicestack_common.events import EVENTS_PATH, SpeechEvent
from voicestack_common.upstream import POOL_KEEP_ALIVE

logger = logging.getLogger(__name__)

# Backoff while the bridge is unreachable; module level so tests can shrink it.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
# The bridge is starting, saturated or restarting: worth another try.
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class EventOutbox:
    """A bounded queue of events and the task that POSTs them, in order, to ``{bridge}/v1/events``."""

    def __init__(
        self,
        bridge_url: str,
        registry: CollectorRegistry,
        namespace: str,
        *,
        queue_size: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        self.url = bridge_url.rstrip("/") + EVENTS_PATH
        self._queue: asyncio.Queue[SpeechEvent] = asyncio.Queue(queue_size)
        self._client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(keepalive_expiry=POOL_KEEP_ALIVE))
        self._task: asyncio.Task[None] | None = None
        self._inflight: SpeechEvent | None = None
        self.sent = Counter(
            "events_sent", "Speech events the MQTT bridge accepted.", namespace=namespace, registry=registry
        )
        self.dropped = Counter(
            "events_dropped",
            "Speech events given up on (queue_full, rejected, shutdown).",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )

    def submit(self, event: SpeechEvent) -> None:
        """Queue an event; never blocks, never raises."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped.labels("queue_full").inc()
            logger.warning("event queue full; event dropped", extra={"event_id": event.event_id})

    def start(self) -> None:
        """Start sending in the background."""
        self._task = asyncio.create_task(self._run(), name="event outbox")

    async def close(self, grace: float = 5.0) -> None:
        """Give queued events ``grace`` seconds to go out, drop the rest, close the client."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lost = self._queue.qsize() + (self._inflight is not None)
        if lost:
            self.dropped.labels("shutdown").inc(lost)
            logger.warning("%d events not delivered to the bridge before shutdown", lost)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            event = self._inflight = await self._queue.get()
            delay = RETRY_INITIAL_S
            while not await self._send(event):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            self._inflight = None
            self._queue.task_done()

    async def _send(self, event: SpeechEvent) -> bool:
        """True once the event is settled: accepted, or refused for good."""
        try:
            response = await self._client.post(
                self.url, content=event.model_dump_json(), headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            logger.debug("event not sent (%s); will retry", type(exc).__name__)
            return False
        if response.status_code < 300:
            self.sent.inc()
            return True
        if response.status_code in RETRYABLE:
            return False
        logger.warning(
            "the bridge refused an event (HTTP %s)", response.status_code, extra={"event_id": event.event_id}
        )
        self.dropped.labels("rejected").inc()
        return True
