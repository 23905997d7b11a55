"""Tools of the fault suite: a TCP proxy that stalls bytes, and a steady load of client threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from devkit.servers import free_port


class StallingProxy:
    """A TCP proxy on loopback in front of ``upstream`` (host, port), counting connections.

    While ``stall`` is set, a connection whose client sends bytes containing it is stalled: nothing
    more goes either way until one side closes (a broker that accepted the request and hangs).
    While ``trickle`` is set, such a connection's answer comes back a few bytes at a time, each
    piece ``trickle_pause`` seconds after the last (a broker that answers, but too slowly).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stall: bytes | None = None
        self.trickle: bytes | None = None
        self.trickle_pause = 0.2
        self.trickled = 0
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self.stalled = 0
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _close(self) -> None:
        """Stop listening, end every connection and wait for their handlers."""
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        current = asyncio.current_task()
        handlers = [task for task in asyncio.all_tasks() if task is not current]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _count(self, delta: int) -> None:
        with self._lock:
            self.open += delta
            if delta > 0:
                self.accepted += 1
                self.peak_open = max(self.peak_open, self.open)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._count(1)
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            self._writers.discard(client_writer)
            self._count(-1)
            return
        self._writers.add(upstream_writer)
        stalled = asyncio.Event()
        slow = asyncio.Event()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inspect: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    if inspect and self.stall is not None and self.stall in data and not stalled.is_set():
                        stalled.set()
                        with self._lock:
                            self.stalled += 1
                    if inspect and self.trickle is not None and self.trickle in data and not slow.is_set():
                        slow.set()
                        with self._lock:
                            self.trickled += 1
                    if stalled.is_set():
                        continue  # swallowed: the peer waits for bytes that never come
                    pieces = (
                        [data[i : i + 16] for i in range(0, len(data), 16)] if slow.is_set() and not inspect else [data]
                    )
                    for piece in pieces:
                        if len(pieces) > 1:
                            await asyncio.sleep(self.trickle_pause)
                        writer.write(piece)
                        await writer.drain()

        to_upstream = asyncio.ensure_future(pump(client_reader, upstream_writer, True))
        to_client = asyncio.ensure_future(pump(upstream_reader, client_writer, False))
        try:
            # Either side closing ends the connection (a client that gave up closes its side).
            await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._count(-1)  # closed for the count as soon as one side is gone
            for task in (to_upstream, to_client):
                task.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
            for writer in (client_writer, upstream_writer):
                writer.close()
                self._writers.discard(writer)
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


@dataclass
class Load:
    """``clients`` threads each calling ``request(client_index, n)`` until stopped; outcomes counted."""

    request: Callable[[int, int], str]
    clients: int = 4
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                outcome = self.request(index, n)
            except Exception as exc:  # a client-visible failure, kept with its reason
                outcome = f"raised {type(exc).__name__}"
                with self._lock:
                    self.failures.append(f"{outcome}: {exc}")
            with self._lock:
                self.outcomes[outcome] += 1
            n += 1

    def __enter__(self) -> Load:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(600)

    @property
    def total(self) -> int:
        """Requests finished so far."""
        with self._lock:
            return sum(self.outcomes.values())

    def run_until(self, requests: int, timeout: float) -> None:
        """Wait until ``requests`` more requests have finished (bounded by ``timeout`` seconds)."""
        target = self.total + requests
        deadline = time.monotonic() + timeout
        while self.total < target:
            assert time.monotonic() < deadline, f"the load made {self.total} of {target} requests in {timeout} s"
            time.sleep(0.05)
