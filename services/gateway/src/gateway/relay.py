"""The gateway's live relay: one client socket to one STT replica's ``/v1/stream``, with failover.

The relay holds no pipeline logic: frames go to the broker as they come and
events come back, parsed once, from ``events()``. It keeps just enough to continue elsewhere:
the ``start`` message and the input bytes the broker's ``checkpoint`` events
say may still be needed (the container header, and the audio from the oldest
utterance without a final). If the replica's connection drops without a
``closed``, the relay opens a session on another replica with
``resume_at``/``next_utterance`` and replays those bytes, so the client sees
no error (a final the new replica decodes again is not passed on twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from gateway.replicas import Replica, ReplicaSet
from voicestack_common.errors import CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_TRY_AGAIN, VoicestackError
from voicestack_common.events import utc_now
from voicestack_common.live import (
    STREAM_PATH,
    Checkpoint,
    Closed,
    ErrorEvent,
    Final,
    LiveEvent,
    Ready,
    StartMessage,
    error_event,
    server_event,
)

logger = logging.getLogger(__name__)

# How often one session may move to another replica before it gives up.
MAX_FAILOVERS = 3
# Seconds to open a broker session (connect, handshake, ``ready``).
OPEN_TIMEOUT_S = 10.0
# Replay goes out in frames of at most this many bytes.
REPLAY_FRAME = 32 * 1024


class RelayError(VoicestackError):
    """No STT replica takes the session (``saturated``, ``no_upstream``): try again later (1013)."""

    status_code = 503
    default_code = "no_upstream"
    close_code = CLOSE_TRY_AGAIN


class ReplayLog:
    """The input bytes a new replica would need: the header, and everything since the last checkpoint."""

    def __init__(self) -> None:
        self.header = b""
        self.header_len = 0  # bytes of ``header`` the current broker's offsets include
        self._data = bytearray()
        self._start = 0  # original input offset of _data[0]
        self.sent = 0  # original input bytes sent so far
        self.base = 0  # original offset of the current broker's input just after its header
        self.time = 0.0
        self.next_utterance = 1

    def append(self, data: bytes) -> None:
        """Record input bytes sent to the broker."""
        if self.sent < 1 << 16 and len(self.header) < 1 << 16:
            self.header += data[: (1 << 16) - len(self.header)]  # trimmed to the real length at a checkpoint
        self._data += data
        self.sent += len(data)

    def checkpoint(self, event: Checkpoint) -> None:
        """The broker no longer needs input before ``event.offset`` (its own offsets)."""
        original = self.base + max(0, event.offset - self.header_len)
        if self.header_len == 0 and self.base == 0:
            self.header = self.header[: event.header_bytes]
        drop = max(0, min(original - self._start, len(self._data)))
        del self._data[:drop]
        self._start += drop
        self.time = event.time
        self.next_utterance = event.next_utterance

    def replay(self) -> tuple[bytes, bytes]:
        """(header, audio) to send a new broker; its offsets then start at the header's end."""
        self.header_len = len(self.header) if self._start > 0 else 0
        self.base = self._start
        return (self.header if self._start > 0 else b""), bytes(self._data)

    @property
    def held(self) -> int:
        """Bytes held for a replay."""
        return len(self._data) + len(self.header)


def stream_url(replica: Replica) -> str:
    """The replica's ``ws://…/v1/stream``."""
    base = replica.url.rstrip("/")
    return ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://")) + (
        STREAM_PATH
    )


class LiveRelay:
    """One client's live session, relayed to a replica: input in, the core's events out (``events``)."""

    def __init__(self, stt: ReplicaSet, start: StartMessage, *, max_frame: int) -> None:
        self.stt = stt
        self.start = start
        self.max_frame = max_frame
        self.log = ReplayLog()
        self.broker: ClientConnection | None = None
        self.replica: Replica | None = None
        self.failovers = 0
        self.stopping = False
        self.close_code = CLOSE_NORMAL
        self.started_at = utc_now()
        self._ready_sent = False
        self.last_final = 0
        self.model: str | None = None
        self._events: asyncio.Queue[LiveEvent | None] = asyncio.Queue()  # ``None``: no more
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the first broker session (``RelayError`` when no replica takes it)."""
        await self._connect(exclude=None)

    async def events(self) -> AsyncIterator[LiveEvent]:
        """The session's events as the core sends them, ``ready`` first, until ``closed`` or a fatal
        ``error`` (the relay's own, when no replica can carry the session on); ``close_code`` then says
        how the session ended."""
        while (event := await self._events.get()) is not None:
            yield event

    async def send_audio(self, data: bytes) -> None:
        """Input bytes for the broker (kept for a replay)."""
        self.log.append(data)
        await self._send(data)

    async def send_control(self, text: str) -> None:
        """A control message (``commit``, ``clear``, ``stop``) for the broker."""
        if '"stop"' in text:
            self.stopping = True
        await self._send(text)

    async def close(self) -> None:
        """The client left: close the broker session (its decodes are cancelled there)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.close()

    async def _send(self, payload: str | bytes) -> None:
        async with self._lock:
            broker = self.broker
        if broker is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await broker.send(payload)  # a dropped broker is the reader's to handle

    async def _connect(self, exclude: Replica | None) -> None:
        candidates = [r for r in self.stt.candidates() if r is not exclude]
        saturated = False
        for replica in candidates:
            try:
                broker = await asyncio.wait_for(self._open_on(replica), OPEN_TIMEOUT_S)
            except _Saturated:
                saturated = True
                continue
            except (OSError, InvalidHandshake, InvalidStatus, ConnectionClosed, TimeoutError) as exc:
                self.stt.mark(replica, False, f"live session not opened: {type(exc).__name__}")
                continue
            self.broker, self.replica = broker, replica
            self._reader = asyncio.ensure_future(self._read(broker, replica))
            return
        if saturated:
            raise RelayError("every STT replica is at its live-session limit; try again shortly", code="saturated")
        raise RelayError("no STT replica accepts live sessions")

    async def _open_on(self, replica: Replica) -> ClientConnection:
        # No keep-alive pings: a broker applying back-pressure stops reading, pongs included; a dead
        # replica is seen by its connection dropping.
        broker = await websockets.connect(
            stream_url(replica), max_size=None, open_timeout=OPEN_TIMEOUT_S, ping_interval=None
        )
        try:
            start = self.start.model_copy(
                update={
                    "checkpoints": True,
                    "resume_at": self.log.time if self._ready_sent else None,
                    "next_utterance": self.log.next_utterance if self._ready_sent else None,
                }
            )
            await broker.send(start.model_dump_json(exclude_none=True))
            first = server_event.validate_json(await broker.recv())
            if isinstance(first, ErrorEvent) and first.error.code == "saturated":
                raise _Saturated
            if not isinstance(first, Ready):
                raise ConnectionError(f"the broker answered {first.type} to start")
            if self._ready_sent:
                header, audio = self.log.replay()
                for chunk in _frames(header + audio, min(self.max_frame, REPLAY_FRAME)):
                    await broker.send(chunk)
                if self.stopping:
                    await broker.send('{"type":"stop"}')
            else:
                self._ready_sent = True
                self.model = first.model
                self._events.put_nowait(first)
            return broker
        except BaseException:
            with contextlib.suppress(Exception):
                await broker.close()
            raise

    async def _read(self, broker: ClientConnection, replica: Replica) -> None:
        """Relay the broker's events; on a dropped connection, continue on another replica."""
        try:
            async for message in broker:
                if isinstance(message, bytes):
                    continue
                try:
                    event = server_event.validate_json(message)
                except ValidationError:
                    logger.warning("a live event from the STT broker was not understood")
                    continue
                if isinstance(event, Checkpoint):
                    self.log.checkpoint(event)
                    continue
                if isinstance(event, Ready):
                    continue
                utterance = getattr(event, "utterance_id", None)
                if utterance is not None and utterance <= self.last_final:
                    continue  # a replica that took over re-decoded it: the client has it already
                if isinstance(event, Final):
                    self.last_final = event.utterance_id
                self._events.put_nowait(event)
                if isinstance(event, Closed):
                    self._end(await _close_code_of(broker, event))
                    return
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("live relay failed")
            self._end(CLOSE_INTERNAL)
            return
        # No ``closed``: the replica went away mid-session.
        self.stt.mark(replica, False, "live session dropped")
        await self._failover(replica)

    async def _failover(self, dead: Replica) -> None:
        if self.failovers >= MAX_FAILOVERS:
            self._give_up("upstream_unavailable", "the STT replicas keep dropping this session")
            return
        self.failovers += 1
        logger.warning("live session moves to another STT replica", extra={"replica": dead.url})
        async with self._lock:
            self.broker = None
            try:
                await self._connect(exclude=dead)
            except RelayError as exc:
                self._give_up(exc.code, exc.message)
                return

    def _give_up(self, code: str, message: str) -> None:
        self._events.put_nowait(error_event(code, message, fatal=True))
        self._end(CLOSE_TRY_AGAIN)

    def _end(self, close_code: int) -> None:
        """No more events: the session ended with ``close_code``."""
        self.close_code = close_code
        self._events.put_nowait(None)


class _Saturated(Exception):
    """The replica is at its live-session limit."""


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def _close_code_of(broker: ClientConnection, event: Closed) -> int:
    """The broker's own close code (it closes right after ``closed``)."""
    if event.reason == "stop":
        return CLOSE_NORMAL
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(broker.wait_closed(), 2.0)
    return broker.close_code or CLOSE_INTERNAL
