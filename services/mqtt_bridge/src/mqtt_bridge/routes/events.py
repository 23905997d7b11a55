"""``POST /v1/events``: the gateway's events, committed to the outbox before the 202."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request

from mqtt_bridge.deps import MetricsDep, OutboxDep
from mqtt_bridge.outbox import OutboxFull
from mqtt_bridge.schemas import EVENT_ERROR_RESPONSES
from voicestack_common.errors import NotReady, Saturated, validate_as
from voicestack_common.events import EVENTS_PATH, EventAccepted, SpeechEvent
from voicestack_common.jsonbody import read_json

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

# Long enough for a broker outage to be noticed and the outbox to drain a little.
OUTBOX_FULL_RETRY_AFTER = 5


@contextmanager
def outbox_errors(what: str) -> Iterator[None]:
    """The outbox's failures as the stack's errors: full is 503 ``outbox_full`` (the broker has been away
    a while), a database error 503 ``outbox_unavailable``."""
    try:
        yield
    except OutboxFull as exc:
        raise Saturated(
            f"{exc}; the MQTT broker has been unreachable for a while",
            retry_after=OUTBOX_FULL_RETRY_AFTER,
            code="outbox_full",
        ) from None
    except sqlite3.Error as exc:
        logger.exception("the outbox could not store %s", what)
        raise NotReady(f"the outbox cannot store {what}: {exc}", code="outbox_unavailable") from None


@router.post(
    EVENTS_PATH,
    status_code=202,
    response_model=EventAccepted,
    summary="Accept a transcription or synthesis event for publishing",
    responses=EVENT_ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": SpeechEvent.model_json_schema()}}}
    },
)
async def post_event(request: Request, outbox: OutboxDep, metrics: MetricsDep) -> EventAccepted:
    """Store the event durably (202), then publish it; a repeated ``event_id`` gets ``duplicate: true``."""
    event = validate_as(SpeechEvent, await read_json(request), code="invalid_event", what="event")
    with outbox_errors("events"):
        stored = await outbox.accept(event)
    if stored:
        metrics.accepted.labels(type=event.type).inc()
    else:
        metrics.duplicates.inc()
    logger.info("event accepted", extra={"event_id": event.event_id, "type": event.type, "duplicate": not stored})
    return EventAccepted(event_id=event.event_id, duplicate=not stored)
