"""The live session core as this face drives it: one STT broker ``/v1/stream`` session.

``LiveLink`` is the small interface the face needs (audio in, commit, clear, the core's events out);
``open_live`` opens one on a healthy STT replica. Everything about speech (VAD, endpointing,
partials, finals) happens in the core, none of it here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from gateway.upstream import NoUpstream, Upstream
from voicestack_common.errors import UpstreamError
from voicestack_common.live import (
    STREAM_PATH,
    ClearMessage,
    CommitMessage,
    ErrorEvent,
    Ready,
    StartMessage,
    StopMessage,
    server_event,
)

logger = logging.getLogger(__name__)

LiveEvent = object
# Seconds to wait for the broker's ``ready`` before trying the next replica.
READY_TIMEOUT = 10.0


class LiveLink(Protocol):
    """One live session in the core."""

    ready: Ready

    async def send_audio(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def clear(self) -> None: ...
    async def stop(self) -> None: ...
    async def close(self) -> None: ...
    def events(self) -> AsyncIterator[object]: ...


class BrokerLive:
    """A ``LiveLink`` over one STT broker's ``WS /v1/stream``."""

    def __init__(self, socket: ClientConnection, ready: Ready) -> None:
        self.socket = socket
        self.ready = ready

    async def send_audio(self, data: bytes) -> None:
        """Binary PCM frames; the core applies back-pressure by reading slower."""
        await self._send(data)

    async def commit(self) -> None:
        """End the open utterance now."""
        await self._send(CommitMessage().model_dump_json())

    async def clear(self) -> None:
        """Drop the open utterance."""
        await self._send(ClearMessage().model_dump_json())

    async def stop(self) -> None:
        """Finish after the last final."""
        await self._send(StopMessage().model_dump_json())

    async def close(self) -> None:
        """Leave at once (open decodes are cancelled by the core)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(), 2.0)

    async def events(self) -> AsyncIterator[object]:
        """The core's events until it closes."""
        try:
            async for message in self.socket:
                if isinstance(message, bytes):
                    continue
                try:
                    yield server_event.validate_json(message)
                except ValidationError:
                    logger.warning("the STT broker sent an event this gateway does not know")
        except ConnectionClosed:
            return

    async def _send(self, data: bytes | str) -> None:
        try:
            await self.socket.send(data)
        except ConnectionClosed:
            raise UpstreamError("the STT broker closed the live session", code="upstream_unavailable") from None


async def open_live(stt: Upstream, start: StartMessage) -> BrokerLive:
    """Open a session on the first healthy replica that accepts one."""
    last: Exception | None = None
    for replica in stt.candidates()[: 1 + stt.retries]:
        url = "ws" + replica.url.removeprefix("http") + STREAM_PATH
        try:
            socket = await connect(url, max_size=2**22, open_timeout=READY_TIMEOUT, proxy=None)
        except (OSError, InvalidHandshake, InvalidStatus, TimeoutError) as exc:
            stt.mark(replica, False, f"live session refused: {type(exc).__name__}")
            last = exc
            continue
        try:
            await socket.send(start.model_dump_json(exclude_none=True))
            first = server_event.validate_json(await asyncio.wait_for(socket.recv(), READY_TIMEOUT))
        except (ConnectionClosed, TimeoutError, ValidationError) as exc:
            await socket.close()
            last = exc
            continue
        if isinstance(first, Ready):
            return BrokerLive(socket, first)
        await socket.close()
        if isinstance(first, ErrorEvent):
            last = UpstreamError(first.error.message, code=first.error.code)
    if isinstance(last, UpstreamError):
        raise last
    raise NoUpstream("no STT broker replica accepts a live session", retry_after=stt.retry_after)
