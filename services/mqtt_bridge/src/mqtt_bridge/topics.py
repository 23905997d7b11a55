"""Every MQTT topic the bridge publishes or reads, derived from the configured prefixes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Command = Literal["synthesize", "transcribe"]
COMMANDS: tuple[Command, ...] = ("synthesize", "transcribe")
ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic scheme of docs/mqtt.md."""

    prefix: str
    ha_prefix: str = "homeassistant"

    @property
    def status(self) -> str:
        """``online`` (birth) / ``offline`` (last will), retained."""
        return f"{self.prefix}/status"

    @property
    def health(self) -> str:
        """Overall health, retained JSON."""
        return f"{self.prefix}/health"

    def service_health(self, service: str) -> str:
        """One service's health, retained JSON."""
        return f"{self.prefix}/health/{service}"

    @property
    def transcripts(self) -> str:
        """One JSON event per finished transcription."""
        return f"{self.prefix}/transcripts"

    @property
    def synthesis(self) -> str:
        """One JSON event per finished synthesis."""
        return f"{self.prefix}/synthesis"

    @property
    def replies(self) -> str:
        """One JSON event per assistant reply (conversation id, text, interrupted or not)."""
        return f"{self.prefix}/replies"

    @property
    def tool_calls(self) -> str:
        """One JSON event per tool call an assistant made (tool, arguments, status, result)."""
        return f"{self.prefix}/tool_calls"

    def event(self, kind: str) -> str:
        """Where an event of ``kind`` (``transcription``/``synthesis``/``reply``/``tool_call``) goes."""
        return {"transcription": self.transcripts, "reply": self.replies, "tool_call": self.tool_calls}.get(
            kind, self.synthesis
        )

    def command(self, name: Command) -> str:
        """Requests for a command."""
        return f"{self.prefix}/cmd/{name}"

    def command_response(self, name: Command, request_id: str) -> str:
        """Answers to MQTT 3.1.1 clients, which have no response-topic property."""
        return f"{self.prefix}/cmd/{name}/response/{request_id}"

    @property
    def command_errors(self) -> str:
        """Answers to requests that named neither a response topic nor a usable id."""
        return f"{self.prefix}/cmd/errors"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last-will topic."""
        return f"{self.ha_prefix}/status"

    def ha_device_config(self, device_id: str) -> str:
        """Device-based discovery config (Home Assistant 2024.11+)."""
        return f"{self.ha_prefix}/device/{device_id}/config"

    @property
    def reserved(self) -> tuple[str, ...]:
        """Filters of the topics that carry the bridge's own state, events and commands, and Home
        Assistant's: ``POST /v1/publish`` never writes there, whatever the allow-list says."""
        p = self.prefix
        return (
            self.status,
            self.health,
            f"{p}/health/#",
            self.transcripts,
            self.synthesis,
            self.replies,
            self.tool_calls,
            f"{p}/cmd/#",
            f"{self.ha_prefix}/#",
        )


def slug(value: str) -> str:
    """A string reduced to what Home Assistant allows in ids: ``[A-Za-z0-9_-]``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", value).strip("_") or "voicestack"


def valid_publish_topic(topic: str) -> bool:
    """True when ``topic`` can be published to (non-empty, no wildcards, no NUL, short)."""
    return bool(topic) and not any(c in topic for c in "+#\0") and len(topic.encode()) <= 65535
