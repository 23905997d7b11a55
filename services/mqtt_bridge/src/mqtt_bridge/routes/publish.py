"""``POST /v1/publish``: one message of an assistant's tool, allow-listed, committed to the outbox before the 202."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from pydantic import ValidationError

from mqtt_bridge.deps import MetricsDep, OutboxDep, PublishPolicyDep
from mqtt_bridge.publishing import TopicNotAllowed
from mqtt_bridge.routes.events import outbox_errors
from mqtt_bridge.schemas import PUBLISH_ERROR_RESPONSES
from voicestack_common.errors import PayloadTooLarge, invalid_request
from voicestack_common.events import PAYLOAD_TOO_LARGE, PUBLISH_PATH, EventAccepted, PublishRequest
from voicestack_common.jsonbody import read_json

logger = logging.getLogger(__name__)
router = APIRouter(tags=["publish"])


@router.post(
    PUBLISH_PATH,
    status_code=202,
    response_model=EventAccepted,
    summary="Accept a message for an allow-listed topic for publishing",
    responses=PUBLISH_ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PublishRequest.model_json_schema()}},
        }
    },
)
async def post_publish(
    request: Request, outbox: OutboxDep, policy: PublishPolicyDep, metrics: MetricsDep
) -> EventAccepted:
    """Store the message durably (202) if ``MQTT_BRIDGE_PUBLISH_ALLOW`` admits its topic, then publish it;
    a repeated ``event_id`` gets ``duplicate: true``."""
    message = _parse(await read_json(request))
    try:
        policy.check(message.topic)
    except TopicNotAllowed:
        metrics.publishes.labels(outcome="refused").inc()
        logger.info("publish refused", extra={"event_id": message.event_id, "topic": message.topic})
        raise
    with outbox_errors("messages"):
        stored = await outbox.accept_message(message)
    metrics.publishes.labels(outcome="accepted" if stored else "duplicate").inc()
    logger.info(
        "publish accepted",
        extra={"event_id": message.event_id, "topic": message.topic, "duplicate": not stored},
    )
    return EventAccepted(event_id=message.event_id, duplicate=not stored)


def _parse(data: object) -> PublishRequest:
    """The body as a ``PublishRequest``: 413 for an oversized payload, else the one 422 (``invalid_publish``)."""
    try:
        return PublishRequest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if any(error["type"] == PAYLOAD_TOO_LARGE for error in errors):
            raise PayloadTooLarge(
                next(str(error["msg"]) for error in errors if error["type"] == PAYLOAD_TOO_LARGE)
            ) from None
        raise invalid_request(errors, code="invalid_publish", what="publish request") from None
