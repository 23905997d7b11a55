"""``/api/conversations`` (the conversation service's store, per API key), seed 003's
``POST /api/messages/voice`` and seed 000's ``POST /upload`` + ``GET /audio``."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from gateway.conversations.client import owner_of
from gateway.conversations.state import ConversationsDep
from gateway.deps import CallerDep, GatewayDep, limit_transcribe
from gateway.schemas import errors as common_errors
from gateway.usecases import device_reply
from gateway.usecases.voice_message import Upload
from gateway.usecases.voice_message import voice_message as voice_message_flow
from voicestack_common.contracts.conversation import ID_PATTERN as ID
from voicestack_common.encode import FORMATS
from voicestack_common.errors import ClientError, InvalidRequest
from voicestack_common.jsonbody import JsonBodyRoute, media_type, read_json
from voicestack_common.schemas import ErrorResponse

router = APIRouter(tags=["conversations"], route_class=JsonBodyRoute)
seeds = APIRouter(tags=["seed flows"])

ConversationId = Annotated[str, Query(pattern=ID)]


_OWN_ERRORS = {
    404: "No such conversation for this API key (`conversation_not_found`): another key's looks the same",
    409: "The conversation id is taken (`conversation_exists`)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: the gateway's common ones, and this module's own."""
    out = common_errors(*(s for s in statuses if s not in _OWN_ERRORS))
    out.update({s: {"model": ErrorResponse, "description": _OWN_ERRORS[s]} for s in statuses if s in _OWN_ERRORS})
    return out


def _json(response: Any) -> JSONResponse:
    return JSONResponse(response.json(), status_code=response.status_code)


@router.get("", summary="Your conversations, most recently active first", responses=errors(401, 502, 503, 504))
async def list_conversations(
    conversations: ConversationsDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """``{conversations, total, limit, offset}``."""
    params = {"limit": limit, "offset": offset}
    return _json(await conversations.client.call("GET", "/v1/conversations", owner_of(caller), params=params))


@router.post("", status_code=201, summary="Start a conversation", responses=errors(401, 409, 422, 502, 503, 504))
async def create_conversation(request: Request, conversations: ConversationsDep, caller: CallerDep) -> JSONResponse:
    """JSON ``{id?, user_id?, title?}``; 409 when the id is taken."""
    payload = await read_json(request) if await request.body() else {}
    return _json(await conversations.client.call("POST", "/v1/conversations", owner_of(caller), json_body=payload))


# Not under /api/conversations/, where it would hide a conversation whose id is "responders".
@seeds.get(
    "/api/voice/responders",
    tags=["conversations"],
    summary="The responders a client may choose, and their allowed options",
    responses=errors(401, 502, 503, 504),
)
async def responders(conversations: ConversationsDep) -> JSONResponse:
    """``{default, allowed, options}``: what ``start_conversation``'s ``responder`` may ask for."""
    return JSONResponse((await conversations.client.responders()).model_dump(mode="json", exclude_none=True))


@router.get("/{conversation_id}", summary="A conversation with its messages", responses=errors(401, 404, 502, 503, 504))
async def get_conversation(conversation_id: str, conversations: ConversationsDep, caller: CallerDep) -> JSONResponse:
    """404 for an unknown id and for another key's conversation alike."""
    _check_id(conversation_id)
    return _json(await conversations.client.call("GET", f"/v1/conversations/{conversation_id}", owner_of(caller)))


@router.delete(
    "/{conversation_id}", status_code=204, summary="Delete a conversation", responses=errors(401, 404, 502, 503, 504)
)
async def delete_conversation(conversation_id: str, conversations: ConversationsDep, caller: CallerDep) -> Response:
    """404 for an unknown id and for another key's conversation alike."""
    _check_id(conversation_id)
    await conversations.client.call("DELETE", f"/v1/conversations/{conversation_id}", owner_of(caller))
    return Response(status_code=204)


@router.delete(
    "/{conversation_id}/messages/{message_id}",
    status_code=204,
    summary="Delete one message of a conversation",
    responses=errors(401, 404, 502, 503, 504),
)
async def delete_message(
    conversation_id: str, message_id: str, conversations: ConversationsDep, caller: CallerDep
) -> Response:
    """404 for an unknown conversation or another key's (``conversation_not_found``), and for a message
    not in it (``message_not_found``)."""
    _check_id(conversation_id)
    _check_id(message_id)
    await conversations.client.delete_message(owner_of(caller), conversation_id, message_id)
    return Response(status_code=204)


def _check_id(value: str) -> None:
    if not re.match(ID, value):
        raise InvalidRequest("a conversation id is 1 to 64 letters, digits or ._:-", code="invalid_conversation_id")


async def _upload_audio(request: Request) -> Upload:
    """The audio of a raw-body or multipart upload; 400 when empty."""
    media = media_type(request.headers)
    if media == "multipart/form-data":
        async with request.form(max_files=4, max_fields=16) as form:
            upload = form.get("file") or form.get("audio")
            if not isinstance(upload, UploadFile):
                raise ClientError("no 'file' field in the upload", code="empty_body")
            data = await upload.read()
            filename, media = upload.filename or "audio", upload.content_type or "application/octet-stream"
    else:
        data, filename, media = await request.body(), "audio", media or "application/octet-stream"
    if not data:
        raise ClientError("the upload is empty", code="empty_body")
    return Upload(data, filename, media)


@seeds.post(
    "/api/messages/voice",
    summary="Seed 003: a spoken message in a conversation, answered in text and audio",
    dependencies=[Depends(limit_transcribe)],
    responses=errors(400, 401, 404, 413, 415, 422, 429, 502, 503, 504),
)
async def voice_message(
    request: Request,
    gateway: GatewayDep,
    conversations: ConversationsDep,
    caller: CallerDep,
    conversation_id: ConversationId,
    user_id: Annotated[str, Query(max_length=128)],
    language: Annotated[str, Query(max_length=16)] = "en",
    create: Annotated[bool, Query(description="Create the conversation if it does not exist (else 404)")] = False,
    voice: Annotated[str | None, Query(max_length=256)] = None,
    format: Annotated[str, Query(pattern="^(wav|mp3|opus|pcm|flac)$")] = "wav",
) -> dict[str, Any]:
    """Multipart ``file`` → transcript → stored user message → reply → the guide's message shape with
    ``assistant_response`` (the stored reply) and ``assistant_audio`` (base64)."""
    return await voice_message_flow(
        gateway,
        conversations.client,
        owner_of(caller),
        await _upload_audio(request),
        conversation_id=conversation_id,
        user_id=user_id,
        language=language,
        create=create,
        voice=voice,
        format=format,
    )


Session = Annotated[str, Query(pattern=ID, description="Separates devices")]


@seeds.post(
    "/upload",
    status_code=202,
    summary="Seed 000: upload speech (raw body or multipart); the spoken reply waits at GET /audio",
    dependencies=[Depends(limit_transcribe)],
    responses=errors(400, 401, 413, 415, 422, 429, 502, 503, 504),
)
async def upload(
    request: Request,
    gateway: GatewayDep,
    conversations: ConversationsDep,
    caller: CallerDep,
    session: Session = "default",
    language: Annotated[str | None, Query(max_length=16)] = None,
    voice: Annotated[str | None, Query(max_length=256)] = None,
    format: Annotated[str, Query(pattern="^(wav|mp3|opus|pcm|flac)$")] = "wav",
    conversation_id: Annotated[str | None, Query(pattern=ID)] = None,
) -> dict[str, Any]:
    """Transcribes at once (bad audio is this call's error); the reply is made in the background.
    A new upload replaces a reply still being made (the old one counts as interrupted)."""
    conversation, transcript = await device_reply.upload(
        gateway,
        conversations,
        owner_of(caller),
        await _upload_audio(request),
        session=session,
        language=language,
        voice=voice,
        format=format,
        conversation_id=conversation_id,
    )
    return {"status": "accepted", "session": session, "conversation_id": conversation, "transcript": transcript}


@seeds.get(
    "/audio",
    summary="Seed 000: the next piece of reply audio (200), none pending (404), all delivered (204)",
    responses={
        200: {"description": "One piece of the reply's audio; it is deleted once served"},
        204: {"description": "The reply has been fully delivered"},
        404: {"description": "No turn pending, or no audio within the wait (`no_audio`)"},
        **errors(401),
    },
)
async def audio(
    gateway: GatewayDep,
    conversations: ConversationsDep,
    caller: CallerDep,
    session: Session = "default",
    wait: Annotated[float | None, Query(gt=0, le=300, description="Seconds to wait (default 30)")] = None,
) -> Response:
    """Waits up to ``GATEWAY_CHAT_AUDIO_WAIT`` seconds (30) for the next piece; any gateway replica serves
    any device (the pending audio is in the conversation service)."""
    wait = wait or gateway.settings.chat_audio_wait
    found = await device_reply.next_audio(conversations, owner_of(caller), session, wait)
    if found is None:
        return Response(status_code=204)
    audio, format, text, index = found
    headers = {"X-Reply-Text": base64.b64encode(text.encode()).decode(), "X-Piece-Index": str(index)}
    return Response(audio, media_type=FORMATS[format].media_type, headers=headers)
