"""The worker pool: one thread per engine, bounded admission, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from voicestack_common.errors import Saturated, UpstreamTimeout
from voicestack_common.workers import Done, Priority, WorkerPool, emitted


class Recorder:
    """Records which thread loaded and ran it."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.threads: set[int] = set()
        self.closed = False

    def load(self) -> None:
        if self.fail:
            raise RuntimeError("model file missing")
        self.threads.add(threading.get_ident())

    def close(self) -> None:
        self.closed = True


def run(pool: WorkerPool[Recorder], coro_factory):  # type: ignore[no-untyped-def]
    pool.start()
    try:
        return asyncio.run(coro_factory())
    finally:
        pool.close()


def test_each_engine_stays_on_its_own_thread() -> None:
    engines: list[Recorder] = []

    def factory() -> Recorder:
        engines.append(Recorder())
        return engines[-1]

    pool = WorkerPool("t", factory, size=2, max_queue=10)

    def job(engine: Recorder, cancel: threading.Event) -> int:
        engine.threads.add(threading.get_ident())
        time.sleep(0.01)
        return id(engine)

    async def main() -> list[int]:
        return await asyncio.gather(*(pool.submit(job, timeout=10) for _ in range(12)))

    used = run(pool, main)
    assert len(used) == 12
    assert {id(e) for e in engines} >= set(used)
    assert all(len(e.threads) == 1 for e in engines)  # loaded and ran on one thread only
    assert all(e.closed for e in engines)


def test_a_full_queue_is_refused_with_retry_after() -> None:
    pool = WorkerPool("t", Recorder, size=1, max_queue=1, retry_after=7)
    release = threading.Event()

    async def main() -> Saturated:
        first = asyncio.ensure_future(pool.submit(lambda e, c: release.wait(5), timeout=10))
        second = asyncio.ensure_future(pool.submit(lambda e, c: True, timeout=10))
        await asyncio.sleep(0.05)
        with pytest.raises(Saturated) as info:
            await pool.submit(lambda e, c: True, timeout=10)
        release.set()
        assert await first
        assert await second
        return info.value

    error = run(pool, main)
    assert error.status_code == 503
    assert error.headers["Retry-After"] == "7"


def test_timeout_sets_cancel_and_frees_the_slot() -> None:
    pool = WorkerPool("t", Recorder, size=1, max_queue=0)
    seen_cancel = threading.Event()

    def slow(engine: Recorder, cancel: threading.Event) -> None:
        if cancel.wait(5):
            seen_cancel.set()

    async def main() -> bool:
        with pytest.raises(UpstreamTimeout) as info:
            await pool.submit(slow, timeout=0.1)
        assert info.value.code == "inference_timeout"
        return await pool.submit(lambda e, c: True, timeout=5)

    assert run(pool, main) is True
    assert seen_cancel.is_set()


def test_job_errors_reach_the_caller() -> None:
    pool = WorkerPool("t", Recorder, size=1, max_queue=0)

    def broken(engine: Recorder, cancel: threading.Event) -> None:
        raise ValueError("bad input")

    async def main() -> None:
        with pytest.raises(ValueError, match="bad input"):
            await pool.submit(broken, timeout=5)

    run(pool, main)


def test_a_failing_load_fails_start() -> None:
    pool = WorkerPool("t", lambda: Recorder(fail=True), size=2, max_queue=0)
    with pytest.raises(RuntimeError, match="model file missing"):
        pool.start()


def test_emitted_yields_items_as_the_worker_hands_them_over_then_the_result() -> None:
    pool = WorkerPool("emit", Recorder, size=1, max_queue=0)
    release = threading.Event()

    def job(engine: Recorder, cancel: threading.Event, emit: Any) -> str:
        emit(1)
        release.wait(5)  # the first item is out before the job goes on
        emit(2)
        return "done"

    async def scenario() -> list[object]:
        seen: list[object] = []
        async for item in emitted(lambda emit: pool.submit(lambda e, c: job(e, c, emit), timeout=10)):
            seen.append(item)
            release.set()
        return seen

    assert run(pool, scenario) == [1, 2, Done("done")]


def test_emitted_raises_the_job_s_failure_and_cancels_when_closed_early() -> None:
    pool = WorkerPool("emit", Recorder, size=1, max_queue=0)
    cancelled = threading.Event()

    def failing(engine: Recorder, cancel: threading.Event, emit: Any) -> None:
        emit("partial")
        raise UpstreamTimeout("too slow")

    def endless(engine: Recorder, cancel: threading.Event, emit: Any) -> None:
        while not cancel.wait(0.01):
            emit("tick")
        cancelled.set()

    async def scenario() -> list[object]:
        seen: list[object] = []
        with pytest.raises(UpstreamTimeout):  # noqa: PT012
            async for item in emitted(lambda emit: pool.submit(lambda e, c: failing(e, c, emit), timeout=10)):
                seen.append(item)
        items = emitted(lambda emit: pool.submit(lambda e, c: endless(e, c, emit), timeout=10))
        seen.append(await anext(items))
        await items.aclose()
        return seen

    assert run(pool, scenario) == ["partial", "tick"]
    assert cancelled.wait(5)


def test_urgent_jobs_jump_the_queue_and_idle_tells_optional_work() -> None:
    pool = WorkerPool("t", Recorder, size=1, max_queue=1)
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> Any:
        def fn(engine: Recorder, cancel: threading.Event) -> None:
            if name == "first":
                gate.wait(5)
            order.append(name)

        return fn

    async def main() -> None:
        assert pool.has_idle_worker
        first = asyncio.ensure_future(pool.submit(job("first"), timeout=5))
        await asyncio.sleep(0.05)
        assert not pool.has_idle_worker  # optional work (a live partial) is skipped now
        normal = asyncio.ensure_future(pool.submit(job("normal"), timeout=5))
        await asyncio.sleep(0)
        # The queue is full for normal work; an urgent job (a live final) still gets in, ahead of it.
        urgent = asyncio.ensure_future(pool.submit(job("urgent"), timeout=5, priority=Priority.URGENT))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, normal, urgent)

    run(pool, main)
    assert order == ["first", "urgent", "normal"]
