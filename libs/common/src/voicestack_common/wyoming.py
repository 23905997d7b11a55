"""Serving the Wyoming protocol (Home Assistant Assist) beside a service's HTTP API.

The ``wyoming`` package frames the events; this module adds what a network
server needs around it: a cap on the lengths a client declares, one task per
request that is cancelled when the client goes away, domain errors answered
as Wyoming ``error`` events, metrics, a clean shutdown that waits for the open
connections, and an optional mDNS advertisement so Home Assistant finds the
service by itself.

    client ──► AsyncTcpServer ──► WyomingHandler.on_event   (one connection, events in order)
                                        └─► start_work(...)   (the request: one task, cancelled on EOF)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from voicestack_common.audio import Samples
from voicestack_common.errors import ClientError, Saturated, UnsupportedMediaType, VoicestackError

logger = logging.getLogger(__name__)

# The largest JSON data or binary payload one event may declare. Audio chunks
# are a few kilobytes and texts a few thousand characters; a length above this
# is a broken or hostile client, and the connection is closed before reading it.
MAX_EVENT_BYTES = 4 * 1024 * 1024
# Seconds a shutdown waits for open connections to finish their request.
CLOSE_GRACE_S = 5.0
WYOMING_SERVICE_TYPE = "_wyoming._tcp.local."
SAMPLE_WIDTHS = (1, 2, 4)
MAX_CHANNELS = 8


class ProtocolError(ClientError):
    """The client broke the event sequence or sent a malformed event: answered, then disconnected."""

    default_code = "protocol_error"


class UnsupportedAudioFormat(ProtocolError, UnsupportedMediaType):
    """An ``audio-start`` or ``audio-chunk`` in a format that cannot be read."""

    default_code = "unsupported_audio_format"


class WyomingMetrics:
    """Connections and requests over Wyoming; errors go to the service's shared error counter."""

    def __init__(self, registry: CollectorRegistry, namespace: str, errors: Counter) -> None:
        self.connections = Gauge(
            "wyoming_connections", "Open Wyoming connections.", namespace=namespace, registry=registry
        )
        self.requests = Counter(
            "wyoming_requests",
            "Wyoming requests by kind and outcome (ok, error, cancelled).",
            ["kind", "outcome"],
            namespace=namespace,
            registry=registry,
        )
        self.errors = errors


class _BoundedReader:
    """The two reads ``wyoming.event.async_read_event`` makes, with declared lengths capped."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        if n > self._limit:
            # async_read_event turns a ValueError into "no event": the connection closes.
            raise ValueError(f"event declares {n} bytes; the limit is {self._limit}")
        return await self._reader.readexactly(n)

    def feed_eof(self) -> None:
        self._reader.feed_eof()


def error_event(exc: VoicestackError) -> Event:
    """A domain error as Wyoming's ``error`` event (its ``code`` is our machine code)."""
    text = exc.message
    if isinstance(exc, Saturated):
        text = f"{text}; retry in {exc.headers.get('Retry-After', '1')} s"
    return Error(text=text, code=exc.code).event()


class WyomingHandler(AsyncEventHandler):
    """One client connection: events handled in order, each request's work in a task of its own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, metrics: WyomingMetrics) -> None:
        super().__init__(cast(asyncio.StreamReader, _BoundedReader(reader, MAX_EVENT_BYTES)), writer)
        self.metrics = metrics
        self.task: asyncio.Task[Any] | None = None
        self._work: asyncio.Task[None] | None = None
        self._work_coro: Coroutine[Any, Any, None] | None = None

    @abstractmethod
    async def on_event(self, event: Event) -> bool:
        """Handle one event; ``False`` closes the connection. Raise domain errors to answer them."""

    async def run(self) -> None:
        """Serve the connection until the client leaves; never raises."""
        self.task = asyncio.current_task()
        self.metrics.connections.inc()
        try:
            await super().run()
        except (ConnectionError, asyncio.IncompleteReadError):
            logger.debug("wyoming client went away mid-event")
        except Exception:
            logger.exception("wyoming connection failed")
        finally:
            self.metrics.connections.dec()

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self.on_event(event)
        except ProtocolError as exc:
            await self.send_error(exc)
            return False
        except VoicestackError as exc:
            await self.send_error(exc)
            return True
        except (KeyError, TypeError, ValueError) as exc:  # a field missing or of the wrong type
            logger.info("malformed %s event: %r", event.type, exc)
            await self.send_error(ProtocolError(f"malformed {event.type!r} event", code="invalid_event"))
            return False

    async def send_error(self, exc: VoicestackError) -> None:
        """Answer ``exc`` as an ``error`` event and count it."""
        self.metrics.errors.labels(code=exc.code).inc()
        if exc.status_code >= 500:
            logger.warning("wyoming %s: %s", exc.code, exc.message)
        await self.write_event(error_event(exc))

    def start_work(self, kind: str, work: Coroutine[Any, Any, None]) -> None:
        """Run the request ``work`` beside the event loop of this connection (call ``finish_work`` first)."""
        self._work = asyncio.create_task(self._guard(kind, work), name=f"wyoming {kind}")
        self._work_coro = work

    @property
    def busy(self) -> bool:
        """Whether a request is running."""
        return self._work is not None and not self._work.done()

    async def finish_work(self) -> None:
        """Wait for the running request, so that the next one answers after it."""
        if self._work is not None:
            await asyncio.wait({self._work})
            self._work = None

    async def disconnect(self) -> None:
        """The client left or the server stops: the running request is cancelled, its job freed."""
        if self._work is not None and not self._work.done():
            self._work.cancel()
            await asyncio.wait({self._work})
            # A task cancelled before its first step never awaited the request: close it, or it is
            # reported as never awaited when collected.
            if self._work_coro is not None:
                self._work_coro.close()

    async def _guard(self, kind: str, work: Coroutine[Any, Any, None]) -> None:
        outcome = "error"
        try:
            await work
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ConnectionError:
            outcome = "cancelled"
            logger.debug("wyoming client went away during %s", kind)
        except VoicestackError as exc:
            with contextlib.suppress(ConnectionError):
                await self.send_error(exc)
        except Exception:
            logger.exception("wyoming %s failed", kind)
            with contextlib.suppress(ConnectionError):
                await self.send_error(VoicestackError("internal server error"))
        finally:
            self.metrics.requests.labels(kind, outcome).inc()


def chunk_samples(audio: bytes, width: int, channels: int) -> Samples:
    """Interleaved little-endian PCM (8-bit unsigned, 16- or 32-bit signed) as mono float32."""
    if width not in SAMPLE_WIDTHS or not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedAudioFormat(
            f"{width}-byte samples in {channels} channels cannot be read; send 16-bit mono (width 2, channels 1)"
        )
    frame = width * channels
    if len(audio) % frame:
        raise UnsupportedAudioFormat(f"a chunk of {len(audio)} bytes is not whole {frame}-byte frames")
    if width == 1:
        samples = (np.frombuffer(audio, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        dtype, scale = ("<i2", 32768.0) if width == 2 else ("<i4", 2147483648.0)
        samples = np.frombuffer(audio, dtype=dtype).astype(np.float32) / scale
    mono: Samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return mono


def check_format(rate: int, width: int, channels: int) -> None:
    """Refuse an announced audio format that cannot be read."""
    if not isinstance(rate, int) or not 1000 <= rate <= 384_000:
        raise UnsupportedAudioFormat(f"sample rate {rate!r} is out of range 1000..384000")
    chunk_samples(b"", width, channels)


def _advertised_address(host: str) -> str:
    """The IPv4 address to advertise: the bound one, or the outgoing interface's for a wildcard."""
    if host not in ("", "0.0.0.0", "::"):
        return socket.gethostbyname(host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setblocking(False)
        probe.connect(("224.0.0.251", 5353))  # the mDNS group: no packet is sent
        return str(probe.getsockname()[0])


class _Advertisement:
    """``{name}._wyoming._tcp.local.`` on mDNS, as the reference Wyoming servers announce themselves."""

    def __init__(self, name: str, host: str, port: int) -> None:
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        address = _advertised_address(host)
        self.info = AsyncServiceInfo(
            WYOMING_SERVICE_TYPE,
            f"{name}.{WYOMING_SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
        )
        loopback = address.startswith("127.")
        self._zeroconf = AsyncZeroconf(
            interfaces=[address] if loopback else InterfaceChoice.All,
            ip_version=IPVersion.V4Only,
        )

    async def start(self) -> None:
        await self._zeroconf.async_register_service(self.info)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._zeroconf.async_unregister_service(self.info)
        await self._zeroconf.async_close()


HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter], WyomingHandler]


@contextlib.asynccontextmanager
async def serve_wyoming(
    name: str, host: str, port: int, factory: HandlerFactory, *, zeroconf_name: str | None = None
) -> AsyncIterator[None]:
    """Listen on ``host:port`` for the block's duration; on exit, finish or cancel every connection."""
    server = AsyncTcpServer(host, port)
    handlers: list[WyomingHandler] = []

    def make(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> WyomingHandler:
        handlers[:] = [h for h in handlers if h.task is None or not h.task.done()]
        handler = factory(reader, writer)
        handlers.append(handler)
        return handler

    try:
        await server.start(make)
    except OSError as exc:
        raise RuntimeError(f"{name}: cannot listen for Wyoming on {host}:{port}: {exc}") from exc
    advertisement: _Advertisement | None = None
    if zeroconf_name:
        advertisement = _Advertisement(zeroconf_name, host, port)
        await advertisement.start()
    logger.info(
        "wyoming server listening",
        extra={"service": name, "host": host, "wyoming_port": port, "zeroconf": zeroconf_name or None},
    )
    try:
        yield
    finally:
        if advertisement is not None:
            await advertisement.close()
        await server.stop()
        tasks = {h.task for h in handlers if h.task is not None and not h.task.done()}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
