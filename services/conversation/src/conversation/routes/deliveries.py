"""``/v1/deliveries/{session}``: seed 000's pending reply audio, shared by every gateway replica.

See ``conversation.deliveries``. The gateway's ``POST /upload`` begins a delivery and writes its
pieces; its ``GET /audio`` takes them (``take`` waits up to ``wait`` seconds for one).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from conversation.deliveries import Piece
from conversation.deps import OwnerDep, ServiceDep
from voicestack_common.contracts.conversation import (
    ID_PATTERN,
    DeliveryBegin,
    DeliveryDone,
    DeliveryError,
    DeliveryNext,
    DeliveryPieceIn,
    DeliveryTurn,
)
from voicestack_common.errors import InvalidRequest
from voicestack_common.jsonbody import JsonBodyRoute
from voicestack_common.schemas import error_responses

router = APIRouter(tags=["deliveries"], route_class=JsonBodyRoute)
Session = Annotated[str, Path(pattern=ID_PATTERN)]
# Between two reads of a delivery another service replica may be writing (this one is woken at once).
POLL_S = 0.2

_ERRORS = {
    400: "Empty body, not JSON, or nested deeper than 32 levels (`empty_body`, `invalid_json`, `json_too_deep`)",
    409: "The delivery was replaced by a newer upload or has expired (`delivery_superseded`)",
    413: "Body over the size limit (`payload_too_large`)",
    422: "Invalid field (`invalid_request`, `invalid_base64`)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for this router's error statuses."""
    return error_responses({status: _ERRORS[status] for status in statuses})


@router.put("/deliveries/{session}", summary="Begin a device's reply delivery", responses=errors(400, 413, 422))
async def begin(service: ServiceDep, owner: OwnerDep, session: Session, body: DeliveryBegin) -> DeliveryTurn:
    """Drops the device's earlier delivery (its writer gets 409 from now on)."""
    turn = await service.deliveries.begin(owner, session, ttl=body.ttl, conversation_id=body.conversation_id)
    return DeliveryTurn(turn=turn)


@router.post(
    "/deliveries/{session}/pieces",
    status_code=204,
    summary="Store one spoken piece of the reply",
    responses=errors(400, 409, 413, 422),
)
async def add_piece(service: ServiceDep, owner: OwnerDep, session: Session, body: DeliveryPieceIn) -> Response:
    """409 when the delivery is no longer this turn's."""
    try:
        audio = base64.b64decode(body.audio_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("audio_base64 is not valid base64", code="invalid_base64") from None
    piece = Piece(body.index, body.text, body.format, body.sample_rate, audio)
    await service.deliveries.add(owner, session, body.turn, piece)
    return Response(status_code=204)


@router.post(
    "/deliveries/{session}/done",
    status_code=204,
    summary="The reply is complete (or failed)",
    responses=errors(400, 409, 413, 422),
)
async def done(service: ServiceDep, owner: OwnerDep, session: Session, body: DeliveryDone) -> Response:
    """No more pieces come."""
    error = body.error
    await service.deliveries.finish(
        owner,
        session,
        body.turn,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
    )
    return Response(status_code=204)


@router.post(
    "/deliveries/{session}/take",
    summary="Take the next piece (it is deleted), waiting up to `wait` seconds",
    responses=errors(422),
)
async def take(
    service: ServiceDep,
    owner: OwnerDep,
    session: Session,
    wait: Annotated[float, Query(ge=0, le=60)] = 0.0,
) -> DeliveryNext:
    """``pending`` when nothing came within ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        found = await service.deliveries.take(owner, session)
        left = deadline - time.monotonic()
        if found.state != "pending" or left <= 0:
            break
        await service.deliveries.wait_change(owner, session, min(POLL_S, left))
    piece = found.piece
    error = DeliveryError(code=found.error_code, message=found.error_message or "") if found.error_code else None
    if piece is None:
        return DeliveryNext(state=found.state, error=error)  # type: ignore[arg-type]
    return DeliveryNext(
        state="piece",
        index=piece.index,
        text=piece.text,
        format=piece.format,
        sample_rate=piece.sample_rate,
        audio_base64=base64.b64encode(piece.audio).decode(),
    )
