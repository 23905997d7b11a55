"""The model registry on its own (a trivial engine): loads once, unloads idle and LRU models, never a busy one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager

import pytest
from prometheus_client import CollectorRegistry

from voicestack_common.model_registry import CatalogEntry, ModelNotFound, ModelRegistry
from voicestack_common.workers import WorkerPool, running_pool

MB = 2**20


class Pools:
    """Settings for ``running_pool``, and a log of what was loaded."""

    workers = 1
    max_queue = 4
    retry_after = 1

    def __init__(self) -> None:
        self.loads: list[str] = []


class Engine:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def load(self) -> None:
        if self.name == "slow":
            time.sleep(0.3)
        self.log.append(self.name)

    def close(self) -> None:
        pass


def entry(pools: Pools, model_id: str, mb: int = 100) -> CatalogEntry[Engine]:
    def open_pool() -> AbstractAsyncContextManager[WorkerPool[Engine]]:
        return running_pool(model_id, lambda: Engine(model_id, pools.loads), pools)

    return CatalogEntry(model_id, None, open_pool, memory_bytes=mb * MB)


def registry(pools: Pools, ids: list[str], **options: object) -> ModelRegistry[Engine]:
    defaults = options.pop("defaults", ["a"])
    return ModelRegistry(
        "stt",
        [entry(pools, m) for m in ids],
        defaults=defaults,  # type: ignore[arg-type]
        metrics_registry=CollectorRegistry(),
        **{"ttl": None, "memory_limit": None, **options},  # type: ignore[arg-type]
    )


def run(scenario: Callable[[], Coroutine[object, object, None]]) -> None:
    asyncio.run(scenario())


def test_first_uses_wait_for_one_load_and_unknown_models_are_404() -> None:
    pools = Pools()

    async def scenario() -> None:
        models = registry(pools, ["a", "b"])
        await models.start()
        try:
            assert models.loaded_ids == ["a"]

            async def use_b() -> None:
                async with models.use("b") as pool:
                    await pool.submit(lambda engine, cancel: None, timeout=5)

            await asyncio.gather(use_b(), use_b(), use_b())
            assert pools.loads == ["a", "b"]
            with pytest.raises(ModelNotFound) as missing:
                models.get("c")
            assert missing.value.status_code == 404
            assert missing.value.details == {"models": ["a", "b"]}
            cards = {c.id: c for c in models.cards(0, "me", any_language=["en", "de"])}
            assert (cards["a"].default, cards["b"].default, cards["b"].loaded) == (True, False, True)
            assert cards["b"].languages == ["en", "de"]
        finally:
            await models.close()
        assert models.loaded_ids == []

    run(scenario)


def test_idle_models_unload_after_the_ttl_but_not_the_default_nor_one_with_work() -> None:
    pools = Pools()

    async def scenario() -> None:
        models = registry(pools, ["a", "b", "c"], ttl=0.2)
        await models.start()
        try:
            release = threading.Event()
            async with models.use("c"):
                pass
            async with models.use("b") as pool:
                # A job queued on "b" (running for longer than the TTL) keeps it loaded.
                job = asyncio.ensure_future(pool.submit(lambda engine, cancel: release.wait(5), timeout=10))
                await asyncio.sleep(0.6)
                assert models.loaded_ids == ["a", "b"]  # "c" went idle and is gone
                release.set()
                assert await job is True
            await asyncio.sleep(0.6)
            assert models.loaded_ids == ["a"]  # the default stays
            async with models.use("b"):  # and an unloaded model comes back on demand
                assert models.loaded_ids == ["a", "b"]
            assert pools.loads == ["a", "c", "b", "b"]
        finally:
            await models.close()

    run(scenario)


def test_the_memory_ceiling_unloads_the_least_recently_used_idle_model() -> None:
    pools = Pools()

    async def scenario() -> None:
        # Room for the default and two more of 100 MB each.
        models = registry(pools, ["a", "b", "c", "d"], memory_limit=300 * MB)
        await models.start()
        try:
            async with models.use("b"):
                pass
            async with models.use("c") as held:
                async with models.use("b"):
                    pass  # b is now more recently used than c, but c is in use
                async with models.use("d"):
                    assert models.loaded_ids == ["a", "c", "d"]  # b went, not c (held) nor a (default)
                assert held is models.pool("c")
            async with models.use("b"):
                assert models.loaded_ids == ["a", "b", "c"]  # d, released before c, was the least recently used
        finally:
            await models.close()

    run(scenario)


def test_a_caller_cancelled_mid_load_leaves_the_model_loaded_and_free() -> None:
    pools = Pools()

    async def scenario() -> None:
        models = registry(pools, ["a", "slow"], ttl=0.2)
        await models.start()
        try:

            async def use_slow() -> None:
                async with models.use("slow"):
                    pass

            task = asyncio.ensure_future(use_slow())
            await asyncio.sleep(0.1)  # the load is under way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.4)
            assert pools.loads == ["a", "slow"]
            assert models.in_use("slow") == 0
            await asyncio.sleep(0.6)
            assert models.loaded_ids == ["a"]  # nobody holds it: it idled out
        finally:
            await models.close()

    run(scenario)
