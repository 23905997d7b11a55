"""Seed 003's spoken message: audio → transcript → stored user message → the reply → its audio, at once.

The same steps as every face: the transcription and the reply's synthesis are the REST use cases (each
records its event), the turn is the conversation service's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from gateway.conversations.client import ConversationClient
from gateway.deps import Gateway
from gateway.usecases import synthesis, transcription
from voicestack_common.contracts.conversation import (
    DeliveryError,
    MessageOut,
    TurnDone,
    TurnFailed,
    TurnRequest,
    TurnStarted,
)
from voicestack_common.contracts.stt import TranscribeResponse
from voicestack_common.contracts.tts import SynthesizeRequest
from voicestack_common.errors import InvalidRequest, UpstreamError, UpstreamTimeout, VoicestackError
from voicestack_common.schemas import ErrorDetail


def transcript_metadata(result: TranscribeResponse) -> dict[str, Any]:
    """What is kept with a spoken user message."""
    return result.model_dump(exclude={"text"})


@dataclass(frozen=True)
class Upload:
    """Uploaded speech: a raw body or a multipart file."""

    audio: bytes
    filename: str
    content_type: str


class NoSpeech(InvalidRequest):
    """The upload holds no speech."""

    default_code = "no_speech"


def responder_error(error: ErrorDetail | DeliveryError | None) -> VoicestackError:
    """A failed reply as this call's error (a responder's timeout is a 504, anything else a 502)."""
    code = error.code if error is not None else "responder_error"
    message = error.message if error is not None else "the responder failed"
    cls = UpstreamTimeout if code.endswith("timeout") else UpstreamError
    return cls(message, code=code)


async def hear(
    gateway: Gateway, upload: Upload, *, language: str | None, session: str | None, check: bool = True
) -> TranscribeResponse:
    """The upload's transcript, and its event; ``check``: 422 ``no_speech`` when nothing was said."""
    result = await transcription.transcribe(
        gateway,
        io.BytesIO(upload.audio),
        filename=upload.filename,
        content_type=upload.content_type,
        language=language,
        session=session,
    )
    if check and not result.text.strip():
        raise NoSpeech("no speech was heard in the audio")
    return result


async def voice_message(
    gateway: Gateway,
    client: ConversationClient,
    owner: str,
    upload: Upload,
    *,
    conversation_id: str,
    user_id: str,
    language: str,
    create: bool,
    voice: str | None,
    format: str,
) -> dict[str, Any]:
    """The guide's message shape with ``assistant_response`` (the stored reply) and ``assistant_audio``."""
    heard = await hear(gateway, upload, language=language, session=conversation_id)
    body = TurnRequest(
        text=heard.text, user_id=user_id, language=language, transcript=transcript_metadata(heard), create=create
    )
    user: MessageOut | None = None
    reply: MessageOut | None = None
    async for event in client.turn(owner, conversation_id, body):
        if isinstance(event, TurnStarted):
            user = event.user_message
        elif isinstance(event, TurnDone):
            reply = event.message
        elif isinstance(event, TurnFailed):
            raise responder_error(event.error)
    if reply is None:
        raise UpstreamError("the conversation service ended the reply without it", code="upstream_invalid_response")
    speech = SynthesizeRequest(text=reply.text or "…", format=format, voice=voice or gateway.settings.chat_voice)
    spoken = await synthesis.synthesize(gateway, speech, conversation_id)
    return {
        "id": user.id if user is not None else None,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "text": heard.text,
        "message_type": "voice",
        "metadata": {"transcription": heard.model_dump()},
        "created_at": user.model_dump(mode="json")["created_at"] if user is not None else None,
        "assistant_response": reply.model_dump(mode="json"),
        "assistant_audio": spoken.audio_base64,
        "assistant_audio_format": format,
        "assistant_audio_sample_rate": spoken.audio_sample_rate,
    }
