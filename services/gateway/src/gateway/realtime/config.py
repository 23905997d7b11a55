"""A Realtime session's settings: OpenAI's defaults, ``session.update`` applied all-or-nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.realtime.codecs import RealtimeFormat
from gateway.realtime.protocol import (
    InputAudioTranscription,
    RealtimeError,
    SessionUpdate,
    TurnDetection,
    new_id,
)
from gateway.realtime.replier import responder_options
from gateway.realtime.tools import check_choice, checked_tools, parse_choice
from voicestack_common.contracts.conversation import ToolSpec

SessionKind = Literal["session", "transcription_session"]
# OpenAI's server_vad defaults.
DEFAULT_VAD = TurnDetection(
    type="server_vad",
    threshold=0.5,
    prefix_padding_ms=300,
    silence_duration_ms=500,
    eagerness="auto",
    create_response=True,
    interrupt_response=True,
)
_TRANSCRIPTION_FIELDS = frozenset(
    {"input_audio_format", "input_audio_transcription", "turn_detection", "input_audio_noise_reduction", "modalities"}
)


@dataclass
class SessionConfig:
    """The settings in force; ``view()`` is the ``session`` object of ``session.created``/``updated``."""

    kind: SessionKind
    voice: str
    id: str = field(default_factory=lambda: new_id("sess"))
    modalities: list[Literal["text", "audio"]] = field(default_factory=lambda: ["text", "audio"])
    instructions: str = ""
    speed: float = 1.0
    input_audio_format: RealtimeFormat = "pcm16"
    output_audio_format: RealtimeFormat = "pcm16"
    input_audio_transcription: InputAudioTranscription | None = None
    turn_detection: TurnDetection | None = field(default_factory=lambda: DEFAULT_VAD.model_copy())
    temperature: float = 0.8
    max_response_output_tokens: int | Literal["inf"] = "inf"
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"
    """``auto``, ``none``, ``required`` or the name of the tool the model must call."""
    client_set: set[str] = field(default_factory=set)
    """Which of ``instructions``, ``temperature``, ``max_response_output_tokens`` the client set: only
    those reach the responder (the others are the conversation service's own); and whether it set
    ``voice`` (unset, replies take a voice of the language the user spoke)."""

    @classmethod
    def create(cls, kind: SessionKind, voice: str) -> SessionConfig:
        """A new session's settings; a transcription session transcribes from the start."""
        config = cls(kind, voice)
        if kind == "transcription_session":
            config.modalities = ["text"]
            config.input_audio_transcription = InputAudioTranscription(model="whisper-1")
        return config

    @property
    def conversation_id(self) -> str:
        """The session's conversation (``conv_…``), also its id in the conversation service."""
        return "conv_" + self.id.removeprefix("sess_")

    @property
    def interrupts(self) -> bool:
        """Whether speech cancels a response in progress."""
        return self.turn_detection is not None and self.turn_detection.interrupt_response is not False

    def apply(self, update: SessionUpdate) -> None:
        """Apply the fields the client set (``null`` switches transcription or VAD off)."""
        given = update.model_fields_set
        if self.kind == "transcription_session" and (extra := sorted(given - _TRANSCRIPTION_FIELDS)):
            raise RealtimeError(
                f"Unknown parameter: 'session.{extra[0]}'.", code="unknown_parameter", param=f"session.{extra[0]}"
            )
        if update.input_audio_noise_reduction is not None and update.input_audio_noise_reduction.type is not None:
            raise RealtimeError(
                "Input noise reduction is not supported.",
                code="unsupported",
                param="session.input_audio_noise_reduction",
            )
        if update.model_extra:
            raise RealtimeError("Unknown parameter.", code="unknown_parameter")
        changes: dict[str, Any] = {}
        for name in (
            "modalities",
            "instructions",
            "voice",
            "speed",
            "input_audio_format",
            "output_audio_format",
            "temperature",
            "max_response_output_tokens",
        ):
            if name in given and (value := getattr(update, name)) is not None:
                changes[name] = value
        if "tools" in given and update.tools is not None:
            changes["tools"] = checked_tools(update.tools, "session.tools")
        if "tool_choice" in given and update.tool_choice is not None:
            changes["tool_choice"] = parse_choice(update.tool_choice, "session.tool_choice")
        check_choice(
            changes.get("tool_choice", self.tool_choice), changes.get("tools", self.tools), "session.tool_choice"
        )
        if "input_audio_transcription" in given:
            changes["input_audio_transcription"] = update.input_audio_transcription
        if "turn_detection" in given:
            vad = update.turn_detection
            if vad is not None:
                defaults = DEFAULT_VAD.model_dump()
                vad = TurnDetection(**{k: v if v is not None else defaults[k] for k, v in vad.model_dump().items()})
            changes["turn_detection"] = vad
        if changes.get("modalities") == ["audio"]:
            raise RealtimeError(
                "Invalid modalities: ['audio']. Supported: ['text'] and ['audio', 'text'].", param="session.modalities"
            )
        for name, value in changes.items():
            setattr(self, name, value)
        self.client_set |= set(changes) & {"instructions", "temperature", "max_response_output_tokens", "voice"}

    def responder_options(self) -> dict[str, Any]:
        """The session's options for the responder, as the conversation service names them."""
        given = self.client_set
        return responder_options(
            self.instructions if "instructions" in given else None,
            self.temperature if "temperature" in given else None,
            self.max_response_output_tokens if "max_response_output_tokens" in given else None,
        )

    def view(self, shape: SessionKind = "session") -> dict[str, Any]:
        """The session object of ``session.*`` events, or of ``transcription_session.updated``."""
        transcription = (
            self.input_audio_transcription.model_dump(exclude_none=True) if self.input_audio_transcription else None
        )
        vad = self.turn_detection.model_dump() if self.turn_detection else None
        if shape == "transcription_session":
            if vad is not None:
                vad = {k: vad[k] for k in ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")}
            return {
                "modalities": self.modalities,
                "input_audio_format": self.input_audio_format,
                "input_audio_transcription": transcription,
                "turn_detection": vad,
            }
        return {
            "id": self.id,
            "modalities": self.modalities,
            "instructions": self.instructions,
            "voice": self.voice,
            "speed": self.speed,
            "input_audio_format": self.input_audio_format,
            "output_audio_format": self.output_audio_format,
            "input_audio_transcription": transcription,
            "input_audio_noise_reduction": None,
            "turn_detection": vad,
            "tools": [tool.model_dump(mode="json") for tool in self.tools],
            "tool_choice": self.tool_choice,
            "temperature": self.temperature,
            "max_response_output_tokens": self.max_response_output_tokens,
        }
