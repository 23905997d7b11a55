"""The gateway's speech events: typed here, queued and sent by the shared ``EventOutbox``.

Each use case records its event through one of the typed methods (``transcribed``, ``heard``,
``synthesized``, ``replied``); the outbox (``voicestack_common.event_outbox``, which the brokers'
Wyoming servers use too) sends them to the bridge in the background, retried, never blocking.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from gateway.metrics import GatewayMetrics
from voicestack_common.contracts.conversation import ToolCallOut
from voicestack_common.event_outbox import EventOutbox
from voicestack_common.events import SpeechEvent, utc_now
from voicestack_common.live import Final
from voicestack_common.logging import request_id_var

logger = logging.getLogger(__name__)


class EventSender:
    """The gateway's events, typed, over one ``EventOutbox`` (disabled without ``base_url``)."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient | None,
        metrics: GatewayMetrics,
        *,
        queue_size: int,
        synthesis: bool = True,
    ) -> None:
        self.outbox = EventOutbox(base_url if client is not None else "", metrics, client=client, queue_size=queue_size)
        self.synthesis = synthesis

    @property
    def url(self) -> str:
        """Where events go (empty: nowhere)."""
        return self.outbox.url

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere."""
        return self.outbox.enabled

    @property
    def pending(self) -> int:
        """Events not yet accepted by the bridge."""
        return self.outbox.pending

    @property
    def sent(self) -> int:
        """Events the bridge accepted."""
        return self.outbox.sent

    @property
    def dropped(self) -> int:
        """Events given up on."""
        return self.outbox.dropped

    def submit(self, event: SpeechEvent) -> None:
        """Queue an event; never blocks, never raises."""
        self.outbox.submit(event)

    async def run(self) -> None:
        """Send queued events until cancelled (the app's lifespan runs it as a task)."""
        await self.outbox.run()

    async def close(self, grace: float) -> None:
        """Give queued events ``grace`` seconds to go out (after ``run`` stopped); drop the rest."""
        await self.outbox.close(grace)

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

    def tool_called(
        self,
        call: ToolCallOut,
        *,
        session_id: str | None,
        conversation_id: str | None,
        message_id: str | None,
        seconds: float,
    ) -> None:
        """Queue the event of a tool call the assistant made (``{prefix}/tool_calls``)."""
        if not self.enabled:
            return
        try:
            arguments = json.loads(call.arguments)
        except ValueError:
            arguments = {"raw": call.arguments}
        self._record(
            "tool_call",
            utc_now() - timedelta(seconds=seconds),
            session_id,
            call.result or "",
            seconds,
            tool=call.name,
            call_id=call.call_id,
            arguments=arguments if isinstance(arguments, dict) else {"value": arguments},
            status=call.status,
            error_code=call.error_code,
            conversation_id=conversation_id,
            message_id=message_id,
        )

    def _record(
        self,
        kind: Literal["transcription", "synthesis", "reply", "tool_call"],
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
            self.outbox.drop("invalid")
            return
        self.submit(event)
