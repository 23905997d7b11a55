"""``/api/conversations`` (the conversation service's store, per API key), seed 003's
``POST /api/messages/voice`` and seed 000's ``POST /upload`` + ``GET /audio``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from gateway import brokers
from gateway.conversations.client import owner_of
from gateway.conversations.reply import Reply, Voice
from gateway.conversations.state import Conversations, ConversationsDep, DeviceTurn
from gateway.deps import CallerDep, GatewayDep, limit_transcribe
from gateway.schemas import errors as common_errors
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.encode import FORMATS
from voicestack_common.errors import ClientError, InvalidRequest, UpstreamError, UpstreamTimeout, VoicestackError
from voicestack_common.jsonbody import JsonBodyRoute, media_type, read_json
from voicestack_common.schemas import ErrorResponse

logger = logging.getLogger(__name__)
router = APIRouter(tags=["conversations"], route_class=JsonBodyRoute)
seeds = APIRouter(tags=["seed flows"])

ID = r"^[A-Za-z0-9._:\-]{1,64}$"
ConversationId = Annotated[str, Query(pattern=ID)]
REPLY_FORMATS = ("wav", "mp3", "opus", "pcm", "flac")


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
    return JSONResponse(await conversations.client.responders())


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


def turn_body(
    text: str,
    *,
    user_id: str | None,
    language: str | None,
    transcript: dict[str, Any] | None,
    create: bool,
    responder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The conversation service's turn request."""
    body: dict[str, Any] = {"text": text, "user_id": user_id, "language": language, "create": create}
    if transcript is not None:
        body["transcript"] = transcript
    if responder:
        body["responder"] = responder
    return body


def transcript_metadata(result: TranscribeResponse) -> dict[str, Any]:
    """What is kept with a spoken user message."""
    return result.model_dump(exclude={"text"})


async def _upload_audio(request: Request) -> tuple[bytes, str, str]:
    """The audio of a raw-body or multipart upload: (bytes, filename, content type)."""
    media = media_type(request.headers)
    if media == "multipart/form-data":
        async with request.form(max_files=4, max_fields=16) as form:
            upload = form.get("file") or form.get("audio")
            if not isinstance(upload, UploadFile):
                raise ClientError("no 'file' field in the upload", code="empty_body")
            data = await upload.read()
            return data, upload.filename or "audio", upload.content_type or "application/octet-stream"
    data = await request.body()
    return data, "audio", media or "application/octet-stream"


def _responder_error(error: dict[str, Any]) -> VoicestackError:
    code = str(error.get("code", "responder_error"))
    cls = UpstreamTimeout if code.endswith("timeout") else UpstreamError
    return cls(str(error.get("message", "the responder failed")), code=code)


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
    audio, filename, media = await _upload_audio(request)
    if not audio:
        raise ClientError("the upload is empty", code="empty_body")
    result = await brokers.transcribe(
        gateway.stt, io.BytesIO(audio), filename=filename, content_type=media, language=language
    )
    if not result.text.strip():
        raise InvalidRequest("no speech was heard in the audio", code="no_speech")
    body = turn_body(
        result.text,
        user_id=user_id,
        language=language,
        transcript=transcript_metadata(result),
        create=create,
    )
    user: dict[str, Any] = {}
    reply: dict[str, Any] | None = None
    async for event in conversations.client.turn(owner_of(caller), conversation_id, body):
        if event.kind == "turn":
            user = event.data.get("user_message") or {}
        elif event.kind == "done":
            reply = event.data.get("message")
        elif event.kind == "error":
            raise _responder_error(event.data.get("error") or {})
    assert reply is not None
    synth: dict[str, Any] = {"text": reply["text"] or "…", "format": format}
    if voice or gateway.settings.chat_voice:
        synth["voice"] = voice or gateway.settings.chat_voice
    spoken = await brokers.synthesize(gateway.tts, synth, gateway.settings.voice_fallbacks)
    return {
        "id": user.get("id"),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "text": result.text,
        "message_type": "voice",
        "metadata": {"transcription": result.model_dump()},
        "created_at": user.get("created_at"),
        "assistant_response": reply,
        "assistant_audio": spoken.audio_base64,
        "assistant_audio_format": format,
        "assistant_audio_sample_rate": spoken.audio_sample_rate,
    }


Session = Annotated[str, Query(pattern=r"^[A-Za-z0-9._:\-]{1,64}$", description="Separates devices")]


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
    audio, filename, media = await _upload_audio(request)
    if not audio:
        raise ClientError("the upload is empty", code="empty_body")
    result = await brokers.transcribe(
        gateway.stt, io.BytesIO(audio), filename=filename, content_type=media, language=language
    )
    owner = owner_of(caller)
    key = f"{owner}/{session}"
    if (previous := conversations.devices.pop(key, None)) is not None:
        await previous.stop()
    if not result.text.strip():
        raise InvalidRequest("no speech was heard in the audio", code="no_speech")
    conversation = conversation_id or f"device-{session}"
    # The reply's audio waits in the conversation service, where every gateway replica's GET /audio finds it;
    # a delivery begun on another replica for this device is replaced (its writer stops at its next write).
    begun = {"ttl": gateway.settings.chat_audio_ttl, "conversation_id": conversation}
    delivery = (await conversations.client.call("PUT", f"/v1/deliveries/{session}", owner, json_body=begun)).json()
    reply = Reply(
        gateway,
        conversations.client,
        owner,
        conversation,
        turn_body(result.text, user_id=session, language=language, transcript=transcript_metadata(result), create=True),
        Voice(voice or gateway.settings.chat_voice, format=format),
        session,
    )
    turn = DeviceTurn(reply)
    turn.task = asyncio.create_task(_run_device_turn(conversations, key, turn, session, str(delivery["turn"])))
    conversations.devices[key] = turn
    return {"status": "accepted", "session": session, "conversation_id": conversation, "transcript": result.text}


async def _run_device_turn(
    conversations: Conversations, key: str, turn: DeviceTurn, session: str, delivery: str
) -> None:
    """Make the reply and store each piece of its audio in the delivery, then mark it done."""
    client, reply = conversations.client, turn.reply
    path = f"/v1/deliveries/{session}"
    error: dict[str, str] | None = None
    try:
        async with contextlib.aclosing(reply.events()) as events:
            async for event in events:
                if event.kind == "audio" and event.piece is not None:
                    piece = event.piece
                    body = {"turn": delivery, **piece.message()}
                    for key in ("duration_seconds", "voice", "lang_code"):  # not a delivery's
                        body.pop(key)
                    await client.call("POST", f"{path}/pieces", reply.owner, json_body=body)
                elif event.kind == "error":
                    error = {"code": str(event.data.get("code")), "message": str(event.data.get("message"))}
        await client.call("POST", f"{path}/done", reply.owner, json_body={"turn": delivery, "error": error})
    except VoicestackError as exc:
        if exc.code == "delivery_superseded":  # a newer upload of the device, or nobody fetched it in time
            await reply.cancel()
        else:
            logger.warning("device turn failed: %s", exc.code)
            await reply.cancel()
            failed = {"code": exc.code, "message": exc.message}
            with contextlib.suppress(Exception):
                await client.call("POST", f"{path}/done", reply.owner, json_body={"turn": delivery, "error": failed})
    except Exception:
        logger.exception("device turn failed")
        await reply.cancel()
    finally:
        if conversations.devices.get(key) is turn:
            del conversations.devices[key]


# The longest a single call to the conversation service waits for the next piece (GET /audio repeats it).
TAKE_WAIT_S = 20.0


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
    owner = owner_of(caller)
    deadline = time.monotonic() + (wait or gateway.settings.chat_audio_wait)
    while True:
        left = max(0.0, deadline - time.monotonic())
        params = {"wait": round(min(left, TAKE_WAIT_S), 3)}
        found = (await conversations.client.call("POST", f"/v1/deliveries/{session}/take", owner, params=params)).json()
        state = found.get("state")
        if state == "piece":
            return Response(
                base64.b64decode(found["audio_base64"]),
                media_type=FORMATS[found["format"]].media_type,
                headers={
                    "X-Reply-Text": base64.b64encode(str(found["text"]).encode()).decode(),
                    "X-Piece-Index": str(found["index"]),
                },
            )
        if state == "none":
            raise _NoAudio("no reply is pending for this session: POST /upload first")
        if state == "done":
            return Response(status_code=204)
        if state == "failed":
            raise _responder_error(found.get("error") or {})
        if time.monotonic() >= deadline:
            raise _NoAudio("no reply audio became available in time")


class _NoAudio(VoicestackError):
    status_code = 404
    default_code = "no_audio"
