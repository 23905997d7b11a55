"""The live session core as the gateway's voice faces drive it: the ``LiveRelay`` (one STT replica's
``/v1/stream`` session, replayed onto another replica if that one dies, a transcript event per final).

``LiveLink`` is the small interface a face needs (audio in, commit, clear, the core's events out); the
Realtime face (``realtime/session.py``) and the conversation voice loop (``usecases/voice_chat.py``)
both use ``open_live``. Everything about speech (VAD, endpointing, partials, finals) happens in the
core, none of it here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from gateway.deps import Gateway
from gateway.relay import LiveRelay, RelayError
from voicestack_common.errors import UpstreamError
from voicestack_common.live import (
    ClearMessage,
    Closed,
    CommitMessage,
    ErrorEvent,
    Final,
    Ready,
    StartMessage,
    StopMessage,
    server_event,
)

logger = logging.getLogger(__name__)


class LiveLink(Protocol):
    """One live session in the core."""

    async def send_audio(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def clear(self) -> None: ...
    async def stop(self) -> None: ...
    async def close(self) -> None: ...
    def events(self) -> AsyncIterator[object]: ...


class RelayLive:
    """A ``LiveLink`` over the gateway's ``LiveRelay``."""

    def __init__(self, gateway: Gateway, start: StartMessage, session_id: str) -> None:
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self.session_id = session_id

        async def send_text(text: str) -> None:
            self._events.put_nowait(text)

        def on_final(final: Final, started_at: datetime) -> None:
            gateway.events.heard(started_at, session_id, final, self.relay.model)

        self.relay = LiveRelay(
            gateway.stt,
            start.model_copy(update={"session_id": session_id}),
            send_text,
            on_final,
            max_frame=gateway.settings.live_max_frame_bytes,
        )

    async def open(self) -> None:
        """Open the broker session (an ``UpstreamError`` when no replica takes it)."""
        try:
            await self.relay.open()
        except RelayError as exc:
            raise UpstreamError(exc.message, code=exc.code) from None

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

    async def events(self) -> AsyncIterator[object]:
        """The core's events until the session closes."""
        while True:
            text = await self._events.get()
            try:
                event = server_event.validate_json(text)
            except ValidationError:
                logger.warning("a live event was not understood")
                continue
            if isinstance(event, Ready):
                continue
            yield event
            if isinstance(event, Closed) or (isinstance(event, ErrorEvent) and event.fatal):
                return


async def open_live(gateway: Gateway, start: StartMessage, session_id: str) -> RelayLive:
    """An open live session in the core (``UpstreamError`` when no STT replica takes it)."""
    link = RelayLive(gateway, start, session_id)
    await link.open()
    return link
