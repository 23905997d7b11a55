"""The live-transcription wire contract: what a client sends and what it is sent back.

Shared by the STT broker (``WS /v1/stream``), the gateway's relay
(``WS /api/voice/ws/transcribe``) and clients. Audio travels as binary
frames (or ``audio`` messages with base64 for clients that cannot send
binary); everything else is one JSON object per text frame with a ``type``.
Times are seconds on the session's audio timeline (0 = the first sample).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voicestack_common.errors import InvalidRequest, VoicestackError, invalid_request
from voicestack_common.jsonbody import parse_json

STREAM_PATH = "/v1/stream"
LiveFormat = Literal["pcm16", "webm", "ogg", "wav"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)


EndOfTurn = Literal["model", "silence"]


class StartMessage(_Message):
    """Optional first message: how the audio is encoded and how to transcribe it."""

    type: Literal["start"] = "start"
    format: LiveFormat = "pcm16"
    """Encoding of the binary frames that follow."""
    sample_rate: int = Field(default=16_000, ge=8_000, le=192_000)
    """PCM16 only: samples per second."""
    channels: int = Field(default=1, ge=1, le=8)
    """PCM16 only: interleaved channels (mixed down to mono)."""
    language: str | None = Field(default=None, max_length=16)
    """ISO 639-1 code; unset detects it (multilingual models) or uses the broker's default."""
    model: str | None = Field(default=None, max_length=128)
    """A model of the broker's catalog (``GET /v1/models``); unset: the broker's choice for the language."""
    prompt: str | None = Field(default=None, max_length=1000)
    """Words the model should expect (names, jargon)."""
    partials: bool = True
    """Send ``partial`` events while speech goes on."""
    words: bool = False
    """Add word timings to ``final`` events."""
    vad: bool = True
    """End utterances on silence; off: an utterance ends only on ``commit`` (or at the length limit)."""
    silence_ms: int | None = Field(default=None, ge=100, le=10_000)
    """Silence that ends an utterance (``end_of_turn=silence``); unset uses the server default."""
    end_of_turn: EndOfTurn | None = None
    """``model``: at each short pause an end-of-turn model hears whether the speaker has finished (a
    trailing "and..." waits on, up to the server's cap); ``silence``: ``silence_ms`` of silence. Unset: the
    server's default (``STT_LIVE_END_OF_TURN``, ``silence``). Without the model, always ``silence``."""
    vad_threshold: float | None = Field(default=None, gt=0, lt=1)
    """Silero speech probability above which a frame counts as speech; unset uses the server default."""
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=2_000)
    """Audio kept before the detected start of speech; unset uses the server default."""
    session_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    """Name the session (a relay keeps one id across replicas); unset: the server makes one."""
    resume_at: float | None = Field(default=None, ge=0)
    """Relays only: the audio that follows starts at this time of an earlier session's timeline."""
    next_utterance: int | None = Field(default=None, ge=1)
    """Relays only: the number the next utterance gets (continues an earlier session)."""
    checkpoints: bool = False
    """Relays only: send ``checkpoint`` events saying which input bytes may still be needed."""


class AudioMessage(_Message):
    """Audio for clients that cannot send binary frames."""

    type: Literal["audio"] = "audio"
    audio_base64: str = Field(max_length=16 * 1024 * 1024)


class CommitMessage(_Message):
    """End the current utterance now (push-to-talk release)."""

    type: Literal["commit"] = "commit"


class ClearMessage(_Message):
    """Drop the audio of the current utterance."""

    type: Literal["clear"] = "clear"


class StopMessage(_Message):
    """Finish: decode what is open, send its ``final``, then ``closed``."""

    type: Literal["stop"] = "stop"


ClientMessage = Annotated[
    StartMessage | AudioMessage | CommitMessage | ClearMessage | StopMessage, Field(discriminator="type")
]
client_message: TypeAdapter[StartMessage | AudioMessage | CommitMessage | ClearMessage | StopMessage] = TypeAdapter(
    ClientMessage
)


class SessionSettings(_Message):
    """The settings in force for a session (``ready`` reports them)."""

    format: LiveFormat
    sample_rate: int
    channels: int
    language: str | None = None
    partials: bool
    words: bool
    vad: bool
    silence_ms: int
    end_of_turn: EndOfTurn = "silence"
    vad_threshold: float
    prefix_padding_ms: int
    partial_interval_ms: int
    max_utterance_seconds: float


class Ready(_Message):
    """The session is open; audio may flow."""

    type: Literal["ready"] = "ready"
    session_id: str
    model: str
    settings: SessionSettings


class SpeechStarted(_Message):
    """The VAD heard speech start (``start`` includes the prefix padding)."""

    type: Literal["speech_started"] = "speech_started"
    utterance_id: int
    start: float


class Partial(_Message):
    """The utterance's text so far: ``stable`` will not change, ``unstable`` may."""

    type: Literal["partial"] = "partial"
    utterance_id: int
    text: str
    stable: str
    unstable: str
    start: float
    end: float
    """How far the audio decoded for this partial reaches."""


class SpeechStopped(_Message):
    """The utterance ended (silence, ``commit``, or the length limit); its ``final`` follows."""

    type: Literal["speech_stopped"] = "speech_stopped"
    utterance_id: int
    end: float


class LiveWord(_Message):
    """One word with its times on the session timeline."""

    word: str
    start: float
    end: float
    probability: float


class LiveSegment(_Message):
    """One decoded segment with its times on the session timeline."""

    start: float
    end: float
    text: str


class Final(_Message):
    """The utterance's transcript."""

    type: Literal["final"] = "final"
    utterance_id: int
    text: str
    start: float
    end: float
    segments: list[LiveSegment]
    words: list[LiveWord] | None = None
    confidence: float | None = None
    language: str


class ErrorInfo(_Message):
    """The shared error shape: a stable code and a human message."""

    code: str
    message: str


class ErrorEvent(_Message):
    """Something went wrong; ``fatal`` errors are followed by the socket closing."""

    type: Literal["error"] = "error"
    error: ErrorInfo
    fatal: bool = False
    utterance_id: int | None = None


class Checkpoint(_Message):
    """Relays only: input bytes before ``offset`` (after the first ``header_bytes``) are no longer needed;
    replaying ``header + input[offset:]`` to a new session with ``resume_at=time`` continues this one."""

    type: Literal["checkpoint"] = "checkpoint"
    offset: int
    time: float
    header_bytes: int
    next_utterance: int


class Closed(_Message):
    """The session is over; nothing follows."""

    type: Literal["closed"] = "closed"
    audio_seconds: float
    utterances: int
    reason: str = "stop"


LiveEvent = Ready | SpeechStarted | Partial | SpeechStopped | Final | ErrorEvent | Checkpoint | Closed
ServerEvent = Annotated[LiveEvent, Field(discriminator="type")]
server_event: TypeAdapter[LiveEvent] = TypeAdapter(ServerEvent)


def event_json(event: LiveEvent) -> str:
    """An event as it goes on the wire: unset fields left out, except in a ``final`` (whose ``language``
    and timings a client may read as null)."""
    return event.model_dump_json(exclude_none=event.type != "final")


def sniff_container(data: bytes) -> str | None:
    """The container a frame starts with, if any: such bytes sent without ``start`` are refused,
    since they would be read as PCM."""
    for magic, name in ((b"\x1a\x45\xdf\xa3", "webm"), (b"OggS", "ogg"), (b"RIFF", "wav")):
        if data.startswith(magic):
            return name
    return None


def error_event(code: str, message: str, *, fatal: bool = False, utterance_id: int | None = None) -> ErrorEvent:
    """An ``error`` event."""
    return ErrorEvent(error=ErrorInfo(code=code, message=message), fatal=fatal, utterance_id=utterance_id)


class StartRefused(InvalidRequest):
    """The first frame of a live session cannot open it (``code`` is ``start_required`` or ``invalid_start``);
    the socket closes with 1008."""

    default_code = "invalid_start"


def first_frame(payload: str | bytes, *, reserved: tuple[str, ...] = ()) -> tuple[StartMessage, str | bytes | None]:
    """A live session's ``start`` (explicit, or the PCM16 defaults) and the frame still to handle.

    Container audio without a ``start`` first, a ``start`` that does not validate, or one that sets a
    ``reserved`` field raise ``StartRefused``.
    """
    if isinstance(payload, bytes):
        if (container := sniff_container(payload)) is not None:
            raise StartRefused(
                f"send a 'start' message with format '{container}' before the audio", code="start_required"
            )
        return StartMessage(), payload
    try:
        parsed = parse_json(payload, "message")
    except VoicestackError:
        return StartMessage(), payload
    if not isinstance(parsed, dict) or parsed.get("type") != "start":
        return StartMessage(), payload
    if taken := [key for key in reserved if key in parsed]:
        raise StartRefused(f"{', '.join(taken)}: not for clients to set")
    try:
        return StartMessage.model_validate(parsed), None
    except ValidationError as exc:
        raise StartRefused(invalid_request(exc.errors(), what="start").message) from None
