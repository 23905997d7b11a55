"""What each part of a Realtime session (its input audio, its conversation) has at hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.realtime.config import SessionConfig
    from gateway.realtime.session import RealtimeSession


class SessionPart:
    """A part of one session: the session, its settings and its sender."""

    def __init__(self, session: RealtimeSession) -> None:
        self.session = session

    @property
    def config(self) -> SessionConfig:
        """The session's settings."""
        return self.session.config

    async def send(self, event: dict[str, Any]) -> None:
        """One server event."""
        await self.session.send(event)
