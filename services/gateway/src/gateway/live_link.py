"""The live session core as the gateway's voice faces drive it: the ``LiveRelay`` (one STT replica's
``/v1/stream`` session, replayed onto another replica if that one dies, a transcript event per final).

``LiveLink`` is the small interface a face needs (audio in, commit, clear, the core's events out); the
Realtime face (``realtime/session.py``) and the conversation voice loop (``usecases/voice_chat.py``)
both use ``open_live``. Everything about speech (VAD, endpointing, partials, finals) happens in the
core, none of it here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from gateway.deps import Gateway
from gateway.relay import LiveRelay, RelayError
from voicestack_common.errors import UpstreamError
from voicestack_common.live import (
    ClearMessage,
    CommitMessage,
    Final,
    LiveEvent,
    StartMessage,
    StopMessage,
)

logger = logging.getLogger(__name__)


class LiveLink(Protocol):
    """One live session in the core."""

    async def send_audio(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def clear(self) -> None: ...
    async def stop(self) -> None: ...
    async def close(self) -> None: ...
    def events(self) -> AsyncIterator[LiveEvent]: ...


class RelayLive:
    """A ``LiveLink`` over the gateway's ``LiveRelay``: the one place a live final becomes a transcript
    event and a failover is counted, whichever face drives the session."""

    def __init__(self, gateway: Gateway, start: StartMessage, session_id: str) -> None:
        self.gateway = gateway
        self.session_id = session_id
        self.relay = LiveRelay(
            gateway.stt,
            start.model_copy(update={"session_id": session_id}),
            max_frame=gateway.settings.live_max_frame_bytes,
        )

    async def open(self) -> None:
        """Open the broker session (an ``UpstreamError`` when no replica takes it)."""
        try:
            await self.relay.open()
        except RelayError as exc:
            raise UpstreamError(exc.message, code=exc.code) from None

    async def send(self, payload: str | bytes) -> None:
        """A client's frame as it came: audio bytes, or a control message for the core to answer."""
        if isinstance(payload, bytes):
            await self.relay.send_audio(payload)
        else:
            await self.relay.send_control(payload)

    async def send_audio(self, data: bytes) -> None:
        """PCM frames, at most the relay's frame size each."""
        size = self.relay.max_frame
        for start in range(0, len(data), size):
            await self.relay.send_audio(data[start : start + size])

    async def commit(self) -> None:
        """End the open utterance now."""
        await self.relay.send_control(CommitMessage().model_dump_json())

    async def clear(self) -> None:
        """Drop the open utterance."""
        await self.relay.send_control(ClearMessage().model_dump_json())

    async def stop(self) -> None:
        """Finish after the last final."""
        await self.relay.send_control(StopMessage().model_dump_json())

    async def close(self) -> None:
        """Leave at once (open decodes are cancelled by the core)."""
        await self.relay.close()

    @property
    def close_code(self) -> int:
        """How the session ended (once ``events`` ended)."""
        return self.relay.close_code

    async def events(self) -> AsyncIterator[LiveEvent]:
        """The core's events, ``ready`` first, until the session ends (after ``closed``, or a fatal
        ``error`` when no replica can carry it on)."""
        relay, failovers = self.relay, 0
        async for event in relay.events():
            if relay.failovers > failovers:
                self.gateway.metrics.live_failovers.inc(relay.failovers - failovers)
                failovers = relay.failovers
            if isinstance(event, Final):
                self.gateway.events.heard(relay.started_at, self.session_id, event, relay.model)
            yield event


async def open_live(gateway: Gateway, start: StartMessage, session_id: str) -> RelayLive:
    """An open live session in the core (``UpstreamError`` when no STT replica takes it)."""
    link = RelayLive(gateway, start, session_id)
    await link.open()
    return link
