"""Speech events to the MQTT bridge: queued in memory, sent in the background, retried, never blocking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from gateway.metrics import GatewayMetrics
from voicestack_common.events import EVENTS_PATH, SpeechEvent, utc_now
from voicestack_common.live import Final
from voicestack_common.logging import REQUEST_ID_HEADER, request_id_var

logger = logging.getLogger(__name__)

# Backoff between attempts while the bridge is unreachable; module level so tests can shrink it.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
# Statuses worth retrying: the bridge is starting, saturated or restarting.
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class EventSender:
    """A bounded queue of events and the task that POSTs them to the bridge, in order."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient | None,
        metrics: GatewayMetrics,
        *,
        queue_size: int,
        synthesis: bool = True,
    ) -> None:
        self.url = base_url + EVENTS_PATH if base_url else ""
        self.client = client
        self.metrics = metrics
        self.synthesis = synthesis
        self.queue_size = queue_size
        # The head stays queued while it is being sent, so a cancelled send loses nothing.
        self._queue: deque[SpeechEvent] = deque()
        self._wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere."""
        return bool(self.url) and self.client is not None

    @property
    def pending(self) -> int:
        """Events not yet accepted by the bridge."""
        return len(self._queue)

    def submit(self, event: SpeechEvent) -> None:
        """Queue an event; never blocks, never raises (a full queue drops it and counts it)."""
        if not self.enabled:
            return
        if len(self._queue) >= self.queue_size:
            self._drop("queue_full")
            logger.warning("event queue full; event dropped", extra={"event_id": event.event_id})
            return
        self._queue.append(event)
        self._wake.set()
        self.metrics.events_queued.set(len(self._queue))

    def transcribed(
        self,
        started_at: datetime,
        session_id: str | None,
        *,
        text: str,
        seconds: float,
        language: str | None = None,
        model: str | None = None,
        confidence: float | None = None,
        utterance_id: int | None = None,
    ) -> None:
        """Queue the event of a finished transcription (``utterance_id``: a live session's final)."""
        if not self.enabled:
            return
        self._record(
            "transcription",
            started_at,
            session_id,
            text,
            seconds,
            language=language,
            model=model,
            confidence=confidence,
            utterance_id=utterance_id,
        )

    def heard(self, started_at: datetime, session_id: str | None, final: Final, model: str | None) -> None:
        """Queue the event of a live session's final utterance."""
        self.transcribed(
            started_at,
            session_id,
            text=final.text,
            seconds=round(max(0.0, final.end - final.start), 3),
            language=final.language,
            model=model,
            confidence=final.confidence,
            utterance_id=final.utterance_id,
        )

    def synthesized(
        self,
        started_at: datetime,
        session_id: str | None,
        *,
        text: str,
        seconds: float,
        language: str | None = None,
        voice: str | None = None,
    ) -> None:
        """Queue the event of a finished synthesis (unless synthesis events are off)."""
        if not self.enabled or not self.synthesis:
            return
        self._record("synthesis", started_at, session_id, text, seconds, language=language, voice=voice)

    def replied(
        self,
        started_at: datetime,
        session_id: str | None,
        *,
        text: str,
        seconds: float,
        voice: str | None,
        conversation_id: str | None,
        message_id: str | None,
        interrupted: bool,
    ) -> None:
        """Queue the event of an assistant reply that was spoken (or cut off by the user)."""
        if not self.enabled:
            return
        self._record(
            "reply",
            started_at,
            session_id,
            text,
            seconds,
            voice=voice,
            conversation_id=conversation_id,
            message_id=message_id,
            interrupted=interrupted,
        )

    def _record(
        self,
        kind: Literal["transcription", "synthesis", "reply"],
        started_at: datetime,
        session_id: str | None,
        text: str,
        seconds: float,
        **fields: Any,
    ) -> None:
        """Build the event (fields common to every kind filled here) and queue it; the public methods type it."""
        try:
            event = SpeechEvent(
                type=kind,
                request_id=request_id_var.get(),
                session_id=session_id,
                started_at=started_at,
                finished_at=utc_now(),
                text=text,
                duration_seconds=seconds,
                **fields,
            )
        except ValidationError as exc:  # an odd broker answer must not fail the client's request
            logger.warning("event not built: %s", exc.errors()[0].get("msg"))
            self._drop("invalid")
            return
        self.submit(event)

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

    async def _send(self, event: SpeechEvent) -> bool:
        """True once the event is settled: accepted, or rejected for good."""
        assert self.client is not None
        headers = {"Content-Type": "application/json"}
        if event.request_id:
            headers[REQUEST_ID_HEADER] = event.request_id
        try:
            response = await self.client.post(self.url, content=event.model_dump_json(), headers=headers)
        except httpx.HTTPError as exc:
            logger.debug("event not sent (%s); will retry", type(exc).__name__)
            return False
        if response.status_code < 300:
            self.sent += 1
            self.metrics.events_sent.inc()
            return True
        if response.status_code in _RETRY_STATUSES:
            return False
        logger.warning(
            "the bridge rejected an event (HTTP %s)", response.status_code, extra={"event_id": event.event_id}
        )
        self._drop("rejected")
        return True

    async def close(self, grace: float) -> None:
        """Give queued events ``grace`` seconds to go out (after ``run`` stopped); drop the rest."""
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
        while self._queue:
            self._queue.popleft()
            self._drop("shutdown")
        self.metrics.events_queued.set(0)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.metrics.events_dropped.labels(reason).inc()
