"""Seed 000's device flow: ``POST /upload`` hears the speech and starts the reply; ``GET /audio`` takes its
audio piece by piece.

The reply is a ``Reply`` like every face's; its audio waits in the conversation service
(``/v1/deliveries``), where every gateway replica's ``GET /audio`` finds it. A device's new upload
replaces its reply still being made (the old one counts as interrupted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time

from gateway.conversations.state import Conversations, DeviceTurn
from gateway.deps import Gateway
from gateway.usecases.spoken_reply import Reply, ReplyFailed, SpokenPiece, Voice
from gateway.usecases.voice_message import NoSpeech, Upload, hear, responder_error, transcript_metadata
from voicestack_common.contracts.conversation import (
    DeliveryBegin,
    DeliveryDone,
    DeliveryError,
    DeliveryPieceIn,
    TurnRequest,
)
from voicestack_common.errors import VoicestackError

logger = logging.getLogger(__name__)

# The longest a single call to the conversation service waits for the next piece (``take`` repeats it).
TAKE_WAIT_S = 20.0


class NoAudio(VoicestackError):
    """No reply is pending for the device, or none of its audio came in time."""

    status_code = 404
    default_code = "no_audio"


async def upload(
    gateway: Gateway,
    conversations: Conversations,
    owner: str,
    upload: Upload,
    *,
    session: str,
    language: str | None,
    voice: str | None,
    format: str,
    conversation_id: str | None,
) -> tuple[str, str]:
    """Transcribe now (bad audio is the upload's error) and start the reply in the background;
    ``(conversation id, transcript)``."""
    heard = await hear(gateway, upload, language=language, session=session, check=False)
    key = f"{owner}/{session}"
    if (previous := conversations.devices.pop(key, None)) is not None:
        await previous.stop()  # even when this upload holds no speech: the device spoke again
    if not heard.text.strip():
        raise NoSpeech("no speech was heard in the audio")
    conversation = conversation_id or f"device-{session}"
    # A delivery begun on another replica for this device is replaced (its writer stops at its next write).
    begun = DeliveryBegin(ttl=gateway.settings.chat_audio_ttl, conversation_id=conversation)
    delivery = await conversations.client.begin_delivery(owner, session, begun)
    body = TurnRequest(text=heard.text, user_id=session, language=language, transcript=transcript_metadata(heard))
    reply = Reply(
        gateway,
        conversations.client,
        owner,
        conversation,
        body,
        Voice(voice or gateway.settings.chat_voice, format=format),
        session,
    )
    turn = DeviceTurn(reply)
    turn.task = asyncio.create_task(_deliver(conversations, key, turn, session, delivery.turn))
    conversations.devices[key] = turn
    return conversation, heard.text


async def _deliver(conversations: Conversations, key: str, turn: DeviceTurn, session: str, delivery: str) -> None:
    """Make the reply and store each piece of its audio in the delivery, then mark it done."""
    client, reply = conversations.client, turn.reply
    error: DeliveryError | None = None
    try:
        async with contextlib.aclosing(reply.events()) as events:
            async for event in events:
                if isinstance(event, SpokenPiece):
                    fields = ("index", "text", "format", "sample_rate", "audio_base64")
                    piece = DeliveryPieceIn.model_validate(
                        {"turn": delivery, **{name: getattr(event, name) for name in fields}}
                    )
                    await client.deliver(reply.owner, session, piece)
                elif isinstance(event, ReplyFailed):
                    error = DeliveryError(code=event.error.code, message=event.error.message)
        await client.finish_delivery(reply.owner, session, DeliveryDone(turn=delivery, error=error))
    except VoicestackError as exc:
        await reply.cancel()
        if exc.code != "delivery_superseded":  # else a newer upload of the device, or nobody fetched it in time
            logger.warning("device turn failed: %s", exc.code)
            failed = DeliveryError(code=exc.code, message=exc.message)
            with contextlib.suppress(Exception):
                await client.finish_delivery(reply.owner, session, DeliveryDone(turn=delivery, error=failed))
    except Exception:
        logger.exception("device turn failed")
        await reply.cancel()
    finally:
        if conversations.devices.get(key) is turn:
            del conversations.devices[key]


async def next_audio(
    conversations: Conversations, owner: str, session: str, wait: float
) -> tuple[bytes, str, str, int] | None:
    """The next piece of the device's reply: ``(audio, format, text, index)``; ``None`` once all of it was
    delivered. 404 ``no_audio`` when no reply is pending or none came within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = max(0.0, deadline - time.monotonic())
        found = await conversations.client.take(owner, session, min(left, TAKE_WAIT_S))
        if found.state == "piece":
            audio = base64.b64decode(found.audio_base64 or "")
            return audio, found.format or "wav", found.text or "", found.index or 0
        if found.state == "none":
            raise NoAudio("no reply is pending for this session: POST /upload first")
        if found.state == "done":
            return None
        if found.state == "failed":
            raise responder_error(found.error)
        if time.monotonic() >= deadline:
            raise NoAudio("no reply audio became available in time")
