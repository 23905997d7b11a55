"""Talking to a broker's Wyoming server with the ``wyoming`` package's own client."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from voicestack_common.audio import Pcm, resample

T = TypeVar("T")
# Every read waits at most this long: a test never hangs on a silent server.
READ_TIMEOUT_S = 60.0


def client(port: int) -> AsyncTcpClient:
    """A client for the Wyoming server on ``127.0.0.1:port``."""
    return AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=READ_TIMEOUT_S)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion in a fresh event loop."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


def audio_events(pcm: Pcm, rate: int = 16_000, samples: int = 1024) -> list[Event]:
    """audio-start, 16-bit mono chunks of ``samples`` at ``rate``, audio-stop."""
    data = resample(pcm, rate).to_pcm16()
    step = samples * 2
    chunks = [
        AudioChunk(rate=rate, width=2, channels=1, audio=data[i : i + step]).event() for i in range(0, len(data), step)
    ]
    return [AudioStart(rate=rate, width=2, channels=1).event(), *chunks, AudioStop().event()]


async def send_all(conn: AsyncTcpClient, events: Iterable[Event]) -> None:
    """Write every event in order."""
    for event in events:
        await conn.write_event(event)


async def read_until(conn: AsyncTcpClient, last: str) -> list[Event]:
    """Events up to and including the first of type ``last`` (fails if the connection closes first)."""
    events: list[Event] = []
    while True:
        event = await conn.read_event()
        assert event is not None, f"connection closed before {last!r}; got {[e.type for e in events]}"
        events.append(event)
        if event.type == last:
            return events


async def closed(conn: AsyncTcpClient) -> bool:
    """Whether the server closed the connection (after any events still in flight)."""
    while (event := await conn.read_event()) is not None:
        if event.type == "error":
            continue
    return True


def metric(base_url: str, name: str, **labels: str) -> float:
    """The value of one sample on ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll ``check`` until it holds (a bound on the wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
