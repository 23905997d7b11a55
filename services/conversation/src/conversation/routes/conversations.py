"""``/v1/conversations``: list, create, read, delete; turns (SSE) and interruptions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from conversation.deps import OwnerDep, Service, ServiceDep
from conversation.turns import Turn
from voicestack_common.contracts.conversation import (
    ID_PATTERN,
    ConversationCreate,
    ConversationDetail,
    ConversationList,
    ConversationOut,
    Interrupt,
    MessageOut,
    RespondersOut,
    TurnRequest,
    check_choice,
)
from voicestack_common.errors import InvalidRequest
from voicestack_common.jsonbody import JsonBodyRoute
from voicestack_common.schemas import error_responses

router = APIRouter(tags=["conversations"], route_class=JsonBodyRoute)
ConversationId = Annotated[str, Path(pattern=ID_PATTERN)]
MessageId = Annotated[str, Path(pattern=ID_PATTERN)]

_ERRORS = {
    400: "Empty body, not JSON, or nested deeper than 32 levels (`empty_body`, `invalid_json`, `json_too_deep`)",
    404: "No such conversation (or message) for this owner (`conversation_not_found`, `message_not_found`)",
    409: "The conversation id is taken (`conversation_exists`)",
    413: "Body over the size limit (`payload_too_large`)",
    422: "Invalid field (`invalid_request`, `text_too_long`, `responder_not_allowed`, `option_not_allowed`, ...)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for this router's error statuses."""
    return error_responses({status: _ERRORS[status] for status in statuses})


@router.get("/conversations", summary="The caller's conversations, most recently active first", responses=errors(422))
async def list_conversations(
    service: ServiceDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ConversationList:
    """Newest activity first."""
    rows, total = await service.store.conversations(owner, limit=limit, offset=offset)
    return ConversationList(
        conversations=[ConversationOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.post("/conversations", status_code=201, summary="Start a conversation", responses=errors(400, 409, 413, 422))
async def create_conversation(service: ServiceDep, owner: OwnerDep, body: ConversationCreate) -> ConversationOut:
    """409 when the id is taken."""
    row = await service.store.create(owner, conversation_id=body.id, user_id=body.user_id, title=body.title)
    return ConversationOut.model_validate(row)


@router.get("/conversations/{conversation_id}", summary="A conversation with its messages", responses=errors(404, 422))
async def get_conversation(service: ServiceDep, owner: OwnerDep, conversation_id: ConversationId) -> ConversationDetail:
    """404 for an unknown id and for another caller's."""
    row = await service.store.get(owner, conversation_id)
    messages = await service.store.messages(conversation_id)
    found = ConversationOut.model_validate(row).model_dump()
    return ConversationDetail.model_validate({**found, "messages": [MessageOut.model_validate(m) for m in messages]})


@router.delete(
    "/conversations/{conversation_id}",
    status_code=204,
    summary="Delete a conversation and its messages",
    responses=errors(404, 422),
)
async def delete_conversation(service: ServiceDep, owner: OwnerDep, conversation_id: ConversationId) -> Response:
    """404 for an unknown id and for another caller's."""
    await service.store.delete(owner, conversation_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/turns",
    summary="Add the user's message and stream the reply (text/event-stream)",
    response_class=StreamingResponse,
    responses=errors(400, 404, 413, 422),
)
async def turn(
    service: ServiceDep, owner: OwnerDep, conversation_id: ConversationId, body: TurnRequest
) -> StreamingResponse:
    """Events ``turn``, ``delta``..., then ``done`` or ``error`` (see conversation.turns)."""
    settings = service.settings
    if body.text is not None and len(body.text) > settings.max_text_chars:
        raise InvalidRequest(f"text is longer than {settings.max_text_chars} characters", code="text_too_long")
    name = check_choice(body.responder, service.offered)
    _check_tools(body, service)
    if body.create:
        await service.store.get_or_create(owner, conversation_id, body.user_id)
    else:
        await service.store.get(owner, conversation_id)
    if body.tool_outputs:
        await service.store.give_outputs(conversation_id, {out.call_id: out.output for out in body.tool_outputs})
    run = Turn(
        service.store, settings, service.metrics, service.responders[name], conversation_id, body, service.toolbox
    )
    return StreamingResponse(
        run.events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _check_tools(body: TurnRequest, service: Service) -> None:
    """Client tools must not shadow the service's, nor repeat; a named ``tool_choice`` must be offered."""
    names = [tool.name for tool in body.tools]
    own = set(service.toolbox.tools) if service.toolbox else set()
    if taken := sorted(set(names) & own | {n for n in names if names.count(n) > 1}):
        raise InvalidRequest(f"tool name {taken[0]!r} is taken", code="duplicate_tool", details={"tool": taken[0]})
    if body.tool_choice not in ("auto", "none", "required") and body.tool_choice not in {*names, *own}:
        raise InvalidRequest(
            f"tool_choice names no tool offered: {body.tool_choice!r}",
            code="unknown_tool",
            details={"tool": body.tool_choice},
        )


@router.delete(
    "/conversations/{conversation_id}/messages/{message_id}",
    status_code=204,
    summary="Delete one message of a conversation",
    responses=errors(404, 422),
)
async def delete_message(
    service: ServiceDep, owner: OwnerDep, conversation_id: ConversationId, message_id: MessageId
) -> Response:
    """404 for an unknown conversation or another caller's (``conversation_not_found``), and for a message
    not in it (``message_not_found``). Later turns no longer see the message in their history."""
    await service.store.delete_message(owner, conversation_id, message_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/interrupt",
    summary="Mark a reply interrupted; its text becomes what was heard",
    responses=errors(400, 404, 413, 422),
)
async def interrupt(
    service: ServiceDep, owner: OwnerDep, conversation_id: ConversationId, message_id: str, body: Interrupt
) -> MessageOut:
    """After a barge-in or a cancel."""
    return MessageOut.model_validate(await service.store.interrupt(owner, conversation_id, message_id, body.heard_text))


@router.get("/responders", summary="Responders and options a client may choose")
async def responders(service: ServiceDep) -> RespondersOut:
    """What ``start_conversation`` may ask for."""
    return service.offered
