"""The shared Wyoming server pieces: length caps, shutdown, mDNS advertisement, chunk decoding."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter
from wyoming.event import Event
from wyoming.info import Describe
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from devkit.servers import free_port
from devkit.wyoming_kit import client, read_until
from voicestack_common import wyoming
from voicestack_common.wyoming import (
    UnsupportedAudioFormat,
    WyomingHandler,
    WyomingMetrics,
    check_format,
    chunk_samples,
    serve_wyoming,
)


class EchoHandler(WyomingHandler):
    """Answers describe with an empty info; a ``work`` event runs until cancelled."""

    started: asyncio.Event
    cancelled: asyncio.Event

    async def on_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(Event(type="info"))
        elif event.type == "work":
            self.start_work("work", self._forever())
        return True

    async def _forever(self) -> None:
        EchoHandler.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            EchoHandler.cancelled.set()


def server(port: int, zeroconf_name: str | None = None) -> tuple[AbstractAsyncContextManager[None], CollectorRegistry]:
    """A Wyoming server with the echo handler on ``port``, and its metrics registry."""
    registry = CollectorRegistry()
    m = WyomingMetrics(registry, "test", Counter("errors", "", ["code"], namespace="test", registry=registry))
    return serve_wyoming(
        "test", "127.0.0.1", port, lambda r, w: EchoHandler(r, w, m), zeroconf_name=zeroconf_name
    ), registry


def test_a_declared_length_over_the_cap_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wyoming, "MAX_EVENT_BYTES", 1000)
    port = free_port()

    async def scenario() -> Event | None:
        context, _ = server(port)
        async with context:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(json.dumps({"type": "audio-chunk", "payload_length": 10**9}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return None if not line else Event(type="unexpected")

    assert asyncio.run(scenario()) is None


def test_shutdown_cancels_running_work_and_closes_connections() -> None:
    port = free_port()

    async def scenario() -> tuple[bool, Event | None, float]:
        EchoHandler.started, EchoHandler.cancelled = asyncio.Event(), asyncio.Event()
        context, registry = server(port)
        conn = client(port)
        async with context:
            await conn.connect()
            await conn.write_event(Event(type="work"))
            await asyncio.wait_for(EchoHandler.started.wait(), 10)
        after = await conn.read_event()
        await conn.disconnect()
        return EchoHandler.cancelled.is_set(), after, registry.get_sample_value("test_wyoming_connections") or 0.0

    was_cancelled, after, open_connections = asyncio.run(scenario())
    assert was_cancelled
    assert after is None
    assert open_connections == 0


def test_the_server_is_advertised_on_mdns() -> None:
    port = free_port()
    name = f"vs-test-{port}"

    async def scenario() -> tuple[bool, int | None, list[str], Event]:
        context, _ = server(port, zeroconf_name=name)
        async with context:
            browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            try:
                info = AsyncServiceInfo(wyoming.WYOMING_SERVICE_TYPE, f"{name}.{wyoming.WYOMING_SERVICE_TYPE}")
                found = await info.async_request(browser.zeroconf, 5000)
            finally:
                await browser.async_close()
            async with client(info.port or port) as conn:
                await conn.write_event(Describe().event())
                answer = (await read_until(conn, "info"))[-1]
        return found, info.port, info.parsed_addresses(), answer

    found, advertised_port, addresses, answer = asyncio.run(scenario())
    assert found
    assert advertised_port == port
    assert addresses == ["127.0.0.1"]
    assert answer.type == "info"


def test_chunks_decode_to_mono_float() -> None:
    stereo16 = np.array([[1000, 3000], [-2000, -4000]], dtype="<i2").tobytes()
    assert chunk_samples(stereo16, 2, 2).tolist() == pytest.approx([2000 / 32768, -3000 / 32768])
    assert chunk_samples(np.array([2**30], dtype="<i4").tobytes(), 4, 1).tolist() == [0.5]
    assert chunk_samples(bytes([128, 192]), 1, 1).tolist() == [0.0, 0.5]


@pytest.mark.parametrize(
    ("data", "width", "channels"),
    [(b"\0\0\0", 2, 1), (b"\0" * 6, 3, 1), (b"\0\0", 2, 0), (b"\0\0", 2, 9)],
)
def test_unreadable_chunks_are_refused(data: bytes, width: int, channels: int) -> None:
    with pytest.raises(UnsupportedAudioFormat):
        chunk_samples(data, width, channels)


@pytest.mark.parametrize("rate", [0, 999, 400_000, "16000"])
def test_unreadable_rates_are_refused(rate: object) -> None:
    with pytest.raises(UnsupportedAudioFormat):
        check_format(rate, 2, 1)  # type: ignore[arg-type]
