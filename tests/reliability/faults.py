"""Tools of the fault suite: a TCP proxy that stalls bytes, and a steady load of client threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.servers import free_port


class StallingProxy:
    """A TCP proxy on loopback in front of ``upstream`` (host, port), counting connections.

    While ``stall`` is set, a connection whose client sends bytes containing it is stalled: nothing
    more goes either way until one side closes (a broker that accepted the request and hangs).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stall: bytes | None = None
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self.stalled = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def _count(self, delta: int) -> None:
        with self._lock:
            self.open += delta
            if delta > 0:
                self.accepted += 1
                self.peak_open = max(self.peak_open, self.open)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._count(1)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            self._count(-1)
            return
        stalled = asyncio.Event()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inspect: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    if inspect and self.stall is not None and self.stall in data and not stalled.is_set():
                        stalled.set()
                        with self._lock:
                            self.stalled += 1
                    if stalled.is_set():
                        continue  # swallowed: the peer waits for bytes that never come
                    writer.write(data)
                    await writer.drain()

        to_upstream = asyncio.ensure_future(pump(client_reader, upstream_writer, True))
        to_client = asyncio.ensure_future(pump(upstream_reader, client_writer, False))
        # Either side closing ends the connection (a client that gave up closes its side).
        await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in (to_upstream, to_client):
            task.cancel()
        for writer in (client_writer, upstream_writer):
            writer.close()
        self._count(-1)


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
