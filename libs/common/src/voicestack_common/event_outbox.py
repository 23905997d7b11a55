"""Speech events from a service to the MQTT bridge, sent in the background and retried: the one sender.

The bridge answers ``202`` once an event is in its durable outbox; until then the event waits here,
in a bounded in-memory queue, so a request never waits for the bridge and a bridge restart loses
nothing that was queued. The event at the head stays queued while it is being sent, so a send that
is cancelled (shutdown) loses nothing either. The gateway (``gateway.events.EventSender``, which
builds the typed events) and the brokers' Wyoming servers use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Protocol

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from voicestack_common.events import EVENTS_PATH, SpeechEvent
from voicestack_common.logging import REQUEST_ID_HEADER
from voicestack_common.upstream import POOL_KEEP_ALIVE

logger = logging.getLogger(__name__)

# Backoff while the bridge is unreachable; module level so tests can shrink it.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
# The bridge is starting, saturated or restarting: worth another try.
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class OutboxMetrics(Protocol):
    """Where an outbox counts what it did (the gateway's ``GatewayMetrics`` has the same three)."""

    @property
    def events_sent(self) -> Counter: ...

    @property
    def events_dropped(self) -> Counter: ...

    @property
    def events_queued(self) -> Gauge: ...


class OutboxCounters:
    """``{namespace}_events_sent_total``, ``..._events_dropped_total{reason}``, ``..._events_queued``."""

    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        self.events_sent = Counter(
            "events_sent", "Speech events the MQTT bridge accepted.", namespace=namespace, registry=registry
        )
        self.events_dropped = Counter(
            "events_dropped",
            "Speech events given up on (queue_full, rejected, invalid, shutdown).",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )
        self.events_queued = Gauge(
            "events_queued", "Speech events waiting to be sent.", namespace=namespace, registry=registry
        )


class EventOutbox:
    """A bounded queue of events and the task that POSTs them, in order, to ``{bridge}/v1/events``.

    Without a ``bridge_url`` the outbox is disabled: ``submit`` does nothing. A client passed in is
    the caller's to close; otherwise the outbox opens its own and closes it in ``close``.
    """

    def __init__(
        self,
        bridge_url: str,
        metrics: OutboxMetrics,
        *,
        client: httpx.AsyncClient | None = None,
        queue_size: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        self.url = bridge_url.rstrip("/") + EVENTS_PATH if bridge_url else ""
        self.metrics = metrics
        self.queue_size = queue_size
        self._owns_client = client is None and bool(bridge_url)
        self._client = (
            httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(keepalive_expiry=POOL_KEEP_ALIVE), trust_env=False)
            if self._owns_client
            else client
        )
        self._queue: deque[SpeechEvent] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere."""
        return bool(self.url) and self._client is not None

    @property
    def pending(self) -> int:
        """Events not yet accepted by the bridge."""
        return len(self._queue)

    def submit(self, event: SpeechEvent) -> None:
        """Queue an event; never blocks, never raises (a full queue drops it and counts it)."""
        if not self.enabled:
            return
        if len(self._queue) >= self.queue_size:
            self.drop("queue_full")
            logger.warning("event queue full; event dropped", extra={"event_id": event.event_id})
            return
        self._queue.append(event)
        self._wake.set()
        self.metrics.events_queued.set(len(self._queue))

    def drop(self, reason: str) -> None:
        """Count an event given up on."""
        self.dropped += 1
        self.metrics.events_dropped.labels(reason).inc()

    def start(self) -> None:
        """Send in the background until ``close``."""
        self._task = asyncio.create_task(self.run(), name="event outbox")

    async def run(self) -> None:
        """Send queued events one by one; retry each with backoff until the bridge takes it."""
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = RETRY_INITIAL_S
            while not await self._send(self._queue[0]):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            self._queue.popleft()
            self.metrics.events_queued.set(len(self._queue))

    async def close(self, grace: float = 5.0) -> None:
        """Stop the background task, give queued events ``grace`` seconds to go out, drop the rest."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + grace
        while self._queue and self.enabled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if not await asyncio.wait_for(self._send(self._queue[0]), remaining):
                    break
            except TimeoutError:
                break
            self._queue.popleft()
        lost = len(self._queue)
        while self._queue:
            self._queue.popleft()
            self.drop("shutdown")
        if lost:
            logger.warning("%d events not delivered to the bridge before shutdown", lost)
        self.metrics.events_queued.set(0)
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def _send(self, event: SpeechEvent) -> bool:
        """True once the event is settled: accepted, or refused for good."""
        assert self._client is not None
        headers = {"Content-Type": "application/json"}
        if event.request_id:
            headers[REQUEST_ID_HEADER] = event.request_id
        try:
            response = await self._client.post(self.url, content=event.model_dump_json(), headers=headers)
        except httpx.HTTPError as exc:
            logger.debug("event not sent (%s); will retry", type(exc).__name__)
            return False
        if response.status_code < 300:
            self.sent += 1
            self.metrics.events_sent.inc()
            return True
        if response.status_code in RETRYABLE:
            return False
        logger.warning(
            "the bridge refused an event (HTTP %s)", response.status_code, extra={"event_id": event.event_id}
        )
        self.drop("rejected")
        return True
