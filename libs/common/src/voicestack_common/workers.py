"""A pool of engine instances, each served by one dedicated, long-lived thread.

Native inference libraries keep per-thread state (whisper.cpp builds an
OpenMP thread team for every OS thread that calls it, and slows down once
several threads have), and a model context serves one request at a time. So
each engine instance lives on its own thread for its whole life, and requests
reach it through one bounded queue: the pool size is the parallelism, the
queue bound is the back-pressure (503 + Retry-After beyond it).

Jobs have a priority: a live session's final (``URGENT``) goes ahead of
waiting file transcriptions (``NORMAL``). Optional work (a live partial)
checks ``has_idle_worker`` first and is skipped, never queued, when every
context is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, Protocol, TypeVar

import anyio

from voicestack_common.errors import Saturated, UpstreamTimeout

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """The last item of ``emitted``: the job's result."""

    result: T


async def emitted(start: Callable[[Callable[[Item], None]], Awaitable[T]]) -> AsyncGenerator[Item | Done[T], None]:
    """Run ``start(emit)`` (a job that hands items over from a worker thread through ``emit``) and
    yield each item as it arrives, then ``Done(result)``; a failure of the job is raised here.

    Closing the generator early (the client went away) cancels the job.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[Item] = asyncio.Queue()

    def emit(item: Item) -> None:
        loop.call_soon_threadsafe(items.put_nowait, item)

    task = asyncio.ensure_future(start(emit))
    try:
        while not task.done() or not items.empty():
            getter = asyncio.ensure_future(items.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield Done(task.result())
    finally:
        task.cancel()


class Engine(Protocol):
    """What the pool needs of an engine: load on its thread, close at the end."""

    def load(self) -> None: ...

    def close(self) -> None: ...


E = TypeVar("E", bound=Engine)


class Priority(IntEnum):
    """Lower runs first among waiting jobs."""

    URGENT = 0
    """A live utterance's final: someone is waiting for it right now."""
    NORMAL = 1
    """A request."""
    STOP = 9
    """Shutdown markers: after every admitted job."""


@dataclass(eq=False)
class _Job:
    fn: Callable[[Any, threading.Event], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    cancel: threading.Event = field(default_factory=threading.Event)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkerPool(Generic[E]):
    """``size`` engines on ``size`` threads behind a queue of at most ``max_queue`` waiting jobs."""

    def __init__(self, name: str, factory: Callable[[], E], *, size: int, max_queue: int, retry_after: int = 1) -> None:
        if size < 1 or max_queue < 0:
            raise ValueError("a pool needs size >= 1 and max_queue >= 0")
        self.name = name
        self.size = size
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._factory = factory
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._engines: list[E] = []
        self._busy = 0
        self._admitted = 0  # touched only on the event loop's thread
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Admitted jobs not yet picked up by a worker."""
        return max(0, self._admitted - self._busy)

    @property
    def busy(self) -> int:
        """Jobs running now."""
        return self._busy

    @property
    def has_idle_worker(self) -> bool:
        """Whether a job submitted now would start at once (optional work checks this, on the loop)."""
        # A job whose caller gave up still holds its thread until the engine notices the cancel.
        return max(self._admitted, self._busy) < self.size

    @property
    def engines(self) -> list[E]:
        """The loaded engine instances (for read-only introspection)."""
        return list(self._engines)

    def start(self) -> None:
        """Create and load every engine on its own thread; blocks until all are loaded."""
        loaded: list[threading.Event] = []
        failures: list[BaseException] = []
        for index in range(self.size):
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(ready, failures), name=f"{self.name}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            loaded.append(ready)
        for ready in loaded:
            ready.wait()
        if failures:
            self.close()
            raise failures[0]

    async def submit(
        self, fn: Callable[[E, threading.Event], T], *, timeout: float, priority: Priority = Priority.NORMAL
    ) -> T:
        """Run ``fn(engine, cancel)`` on a free engine; ``cancel`` is set when the caller gives up.

        ``URGENT`` jobs are admitted past ``max_queue`` (their callers bound how many they send).
        """
        if priority > Priority.URGENT and self._admitted >= self.size + self.max_queue:
            raise Saturated(
                f"all {self.size} {self.name} workers are busy and {self.waiting} requests are queued",
                retry_after=self.retry_after,
            )
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop.create_future(), loop)
        self._queue.put_nowait((priority, next(self._order), job))
        self._admitted += 1
        try:
            result: T = await asyncio.wait_for(job.future, timeout)
            return result
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.name} did not finish within {timeout:g} s", code="inference_timeout") from exc
        finally:
            self._admitted -= 1
            job.cancel.set()

    def close(self) -> None:
        """Stop the threads after the jobs they are running; close every engine."""
        for _ in self._threads:
            self._queue.put((Priority.STOP, next(self._order), None))
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def _run(self, ready: threading.Event, failures: list[BaseException]) -> None:
        try:
            engine = self._factory()
            engine.load()
        except BaseException as exc:  # reported by start()
            failures.append(exc)
            ready.set()
            return
        with self._lock:
            self._engines.append(engine)
        ready.set()
        try:
            while (job := self._queue.get()[2]) is not None:
                if job.cancel.is_set() or job.future.done():
                    continue
                with self._lock:
                    self._busy += 1
                result: Any = None
                error: BaseException | None = None
                try:
                    result = job.fn(engine, job.cancel)
                except BaseException as exc:  # handed to the awaiting request
                    error = exc
                finally:
                    with self._lock:
                        self._busy -= 1
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, result, error)
                except RuntimeError:
                    logger.debug("event loop closed before %s could answer", self.name)
        finally:
            try:
                engine.close()
            except Exception:
                logger.exception("closing a %s engine failed", self.name)


class PoolSettings(Protocol):
    """A broker's pool settings."""

    @property
    def workers(self) -> int: ...

    @property
    def max_queue(self) -> int: ...

    @property
    def retry_after(self) -> int: ...


@contextlib.asynccontextmanager
async def running_pool(
    name: str, factory: Callable[[], E], settings: PoolSettings, *, size: int | None = None
) -> AsyncIterator[WorkerPool[E]]:
    """A pool (of ``size`` engines, else ``settings.workers``) whose engines are loaded off the event
    loop before the block, and closed after it."""
    pool: WorkerPool[E] = WorkerPool(
        name, factory, size=size or settings.workers, max_queue=settings.max_queue, retry_after=settings.retry_after
    )
    await anyio.to_thread.run_sync(pool.start)
    try:
        yield pool
    finally:
        await anyio.to_thread.run_sync(pool.close)


async def pool_checks(pool: WorkerPool[Any], backend: str, model: str) -> dict[str, Any]:
    """What a broker's ``/readyz`` says of its pool, and whether a remote engine's server answers."""
    engine = pool.engines[0] if pool.engines else None
    checks: dict[str, Any] = {
        "model_loaded": engine is not None,
        "engine": backend,
        "model": model,
        "workers": pool.size,
        "queue_depth": pool.waiting,
    }
    if (provider := getattr(engine, "provider", None)) is not None:
        checks["execution_provider"] = provider
    probe = getattr(engine, "probe", None)
    if probe is not None:
        checks["upstream_reachable"] = await anyio.to_thread.run_sync(probe)
    return checks


def pool_ready(checks: dict[str, Any]) -> bool:
    """Loaded, and a remote engine's server reachable."""
    return bool(checks["model_loaded"]) and bool(checks.get("upstream_reachable", True))
