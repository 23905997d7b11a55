"""Models as a catalog: loaded on first use, kept while used, unloaded when idle or over a memory ceiling.

A broker offers several models; each loaded model is a running ``WorkerPool``
(``voicestack_common.workers``). The registry knows the catalog, loads a model
when a request first needs it, and unloads it again:

- after ``ttl`` seconds unused (``None``: never), unless it is a default model;
- when loading another would pass ``memory_limit`` bytes (``None``: no ceiling),
  idle models least recently used first, defaults last of all (never one in use);
- never while a request holds it: ``use`` counts who holds each model.

API::

    entries = [CatalogEntry("tiny.en", ("en",), lambda: running_pool(...), memory_bytes=...), ...]
    registry = ModelRegistry("stt", entries, defaults=["tiny.en"], ttl=300, memory_limit=None,
                             metrics_registry=app_registry)
    await registry.start()                       # loads the defaults; starts the idle sweep
    async with registry.use("base") as pool:     # loads "base" if needed; held until the block ends
        result = await pool.submit(...)
    registry.get("base")                         # the entry; ModelNotFound (404) when not in the catalog
    registry.pool("tiny.en")                     # the loaded pool, or None
    registry.cards(created, owned_by)            # ModelCard per entry: loaded, default, languages
    registry.ids, registry.loaded_ids, registry.defaults, registry.in_use("base")
    await registry.unload_idle()                 # what the sweep does every ttl/4 (tests call it too)
    await registry.close()                       # unloads everything

Loads of one model are serialized (two first requests wait for one load);
loads of different models may overlap. A caller cancelled while its model loads
leaves the load to finish (the pool is never left half-started). Metrics
(``NAMESPACE_models_loaded``, ``NAMESPACE_model_loads_total{model}``,
``NAMESPACE_model_unloads_total{model,reason}`` with reason idle, memory or
shutdown, ``NAMESPACE_model_load_seconds``) go on the registry passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from voicestack_common.errors import ClientError
from voicestack_common.schemas import ModelCard
from voicestack_common.workers import Engine, WorkerPool

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Engine)
Kind = Literal["stt", "tts", "llm"]

# The idle sweep runs this often at most, and at least every quarter of the TTL (tests use short TTLs).
SWEEP_MAX_INTERVAL_S = 5.0
SWEEP_MIN_INTERVAL_S = 0.05


class ModelNotFound(ClientError):
    """A request named a model that is not in the catalog (the message lists those that are)."""

    status_code = 404
    default_code = "model_not_found"


@dataclass(frozen=True, slots=True)
class CatalogEntry(Generic[E]):
    """One model a broker offers, and how to run it."""

    id: str
    languages: tuple[str, ...] | None
    """ISO 639-1 codes it serves; ``None``: many (a multilingual model that detects the language)."""
    open: Callable[[], AbstractAsyncContextManager[WorkerPool[E]]]
    """A running pool of this model for the duration of the returned context (e.g. ``running_pool``)."""
    memory_bytes: int = 0
    """Estimated memory while loaded (weights and every context), for the ceiling."""


@dataclass(eq=False)
class _Slot(Generic[E]):
    entry: CatalogEntry[E]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pool: WorkerPool[E] | None = None
    stack: AsyncExitStack | None = None
    users: int = 0
    last_used: float = 0.0


class RegistryMetrics:
    """How many models are loaded, and how often they were loaded and unloaded."""

    def __init__(self, registry: CollectorRegistry, namespace: str, loaded: Callable[[], int]) -> None:
        Gauge("models_loaded", "Models in memory now.", namespace=namespace, registry=registry).set_function(loaded)
        self.loads = Counter("model_loads", "Models loaded.", ["model"], namespace=namespace, registry=registry)
        self.unloads = Counter(
            "model_unloads",
            "Models unloaded, by reason (idle, memory, shutdown).",
            ["model", "reason"],
            namespace=namespace,
            registry=registry,
        )
        self.load_seconds = Histogram(
            "model_load_seconds",
            "Time to load a model.",
            namespace=namespace,
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )


class ModelRegistry(Generic[E]):
    """The catalog of a broker's models and the pools of those loaded now."""

    def __init__(
        self,
        kind: Kind,
        entries: Iterable[CatalogEntry[E]],
        *,
        defaults: Sequence[str],
        ttl: float | None,
        memory_limit: int | None,
        metrics_registry: CollectorRegistry,
        namespace: str | None = None,
    ) -> None:
        self.kind = kind
        self._slots: dict[str, _Slot[E]] = {entry.id: _Slot(entry) for entry in entries}
        if not self._slots:
            raise ValueError("a model registry needs at least one catalog entry")
        if missing := [d for d in defaults if d not in self._slots]:
            raise ValueError(f"default models {missing} are not in the catalog {self.ids}")
        self.defaults = tuple(dict.fromkeys(defaults))
        self.ttl = ttl
        self.memory_limit = memory_limit
        self.metrics = RegistryMetrics(metrics_registry, namespace or kind, lambda: len(self.loaded_ids))
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ids(self) -> list[str]:
        """Every model in the catalog, in catalog order."""
        return list(self._slots)

    @property
    def loaded_ids(self) -> list[str]:
        """The models in memory now."""
        return [model_id for model_id, slot in self._slots.items() if slot.pool is not None]

    def get(self, model_id: str) -> CatalogEntry[E]:
        """The catalog entry; ``ModelNotFound`` when there is none."""
        slot = self._slots.get(model_id)
        if slot is None:
            raise ModelNotFound(
                f"model {model_id!r} is not offered here; use one of {', '.join(self.ids)}",
                details={"models": self.ids},
            )
        return slot.entry

    def pool(self, model_id: str) -> WorkerPool[E] | None:
        """The model's pool if it is loaded (for metrics and readiness; use ``use`` to run work)."""
        return self._slots[model_id].pool

    def in_use(self, model_id: str) -> int:
        """How many holders the model has now."""
        return self._slots[model_id].users

    async def start(self) -> None:
        """Load the default models, then sweep idle ones away in the background."""
        for model_id in self.defaults:
            async with self.use(model_id):
                pass
        if self.ttl is not None:
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        """Stop the sweep and unload every model."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for slot in self._slots.values():
            async with slot.lock:
                await self._unload(slot, "shutdown")

    @contextlib.asynccontextmanager
    async def use(self, model_id: str) -> AsyncIterator[WorkerPool[E]]:
        """The model's running pool, loaded first if needed; it stays loaded until the block ends."""
        self.get(model_id)
        slot = self._slots[model_id]
        if slot.pool is not None and not slot.lock.locked():
            # Loaded and not being (un)loaded: the usual case, taken without a task. No await lies
            # between the check and the count, and an unload re-checks the count under the lock.
            pool = self._take(slot)
        else:
            # A caller cancelled mid-load (a client gone) must not abandon a half-started pool: the
            # acquisition runs on, and is given back as soon as it completes.
            acquiring = asyncio.ensure_future(self._acquire(slot))
            try:
                pool = await asyncio.shield(acquiring)
            except asyncio.CancelledError:
                acquiring.add_done_callback(
                    lambda done: self._release(slot) if not done.cancelled() and done.exception() is None else None
                )
                raise
        try:
            yield pool
        finally:
            self._release(slot)

    async def _acquire(self, slot: _Slot[E]) -> WorkerPool[E]:
        async with slot.lock:
            if slot.pool is None:
                await self._load(slot)
            return self._take(slot)

    def _take(self, slot: _Slot[E]) -> WorkerPool[E]:
        assert slot.pool is not None
        slot.users += 1
        slot.last_used = time.monotonic()
        return slot.pool

    def _release(self, slot: _Slot[E]) -> None:
        slot.users -= 1
        slot.last_used = time.monotonic()

    def cards(self, created: int, owned_by: str, any_language: Sequence[str] | None = None) -> list[ModelCard]:
        """One card per catalog model; ``any_language`` lists what a multilingual model hears."""
        return [
            ModelCard(
                id=model_id,
                created=created,
                owned_by=owned_by,
                kind=self.kind,
                loaded=slot.pool is not None,
                default=model_id in self.defaults,
                languages=list(slot.entry.languages or any_language or []) or None,
            )
            for model_id, slot in self._slots.items()
        ]

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models unused for ``ttl`` seconds (never a default or one in use); returns their ids."""
        if self.ttl is None:
            return []
        now = time.monotonic() if now is None else now
        done = []
        for model_id, slot in self._slots.items():
            if model_id in self.defaults or slot.pool is None or slot.users or slot.lock.locked():
                continue
            if now - slot.last_used >= self.ttl:
                async with slot.lock:
                    if slot.users == 0 and slot.pool is not None:
                        await self._unload(slot, "idle")
                        done.append(model_id)
        return done

    async def _sweep(self) -> None:
        assert self.ttl is not None
        interval = min(SWEEP_MAX_INTERVAL_S, max(SWEEP_MIN_INTERVAL_S, self.ttl / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.unload_idle()
            except Exception:
                logger.exception("unloading idle %s models failed", self.kind)

    async def _make_room(self, wanted: _Slot[E]) -> None:
        """Unload idle models, least recently used first (defaults last), until ``wanted`` fits."""
        if self.memory_limit is None:
            return

        def used() -> int:
            return sum(s.entry.memory_bytes for s in self._slots.values() if s.pool is not None or s.lock.locked())

        # ``wanted`` holds its lock while loading, so used() already counts it.
        idle = sorted(
            (s for s in self._slots.values() if s is not wanted and s.pool is not None),
            key=lambda s: (s.entry.id in self.defaults, s.last_used),
        )
        for slot in idle:
            if used() <= self.memory_limit:
                return
            if slot.users or slot.lock.locked():
                continue
            async with slot.lock:
                if slot.users == 0 and slot.pool is not None:
                    await self._unload(slot, "memory")
        if used() > self.memory_limit:
            logger.warning(
                "loading %s model %s passes the memory limit: the other models are in use",
                self.kind,
                wanted.entry.id,
                extra={"limit_mb": self.memory_limit // 2**20, "estimate_mb": used() // 2**20},
            )

    async def _load(self, slot: _Slot[E]) -> None:
        await self._make_room(slot)
        started = time.perf_counter()
        stack = AsyncExitStack()
        try:
            slot.pool = await stack.enter_async_context(slot.entry.open())
        except BaseException:
            await stack.aclose()
            raise
        slot.stack = stack
        slot.last_used = time.monotonic()
        elapsed = time.perf_counter() - started
        self.metrics.loads.labels(slot.entry.id).inc()
        self.metrics.load_seconds.observe(elapsed)
        logger.info("%s model loaded", self.kind, extra={"model": slot.entry.id, "seconds": round(elapsed, 3)})

    async def _unload(self, slot: _Slot[E], reason: str) -> None:
        if slot.stack is None:
            return
        stack, slot.stack, slot.pool = slot.stack, None, None
        await stack.aclose()
        self.metrics.unloads.labels(slot.entry.id, reason).inc()
        logger.info("%s model unloaded", self.kind, extra={"model": slot.entry.id, "reason": reason})


def loaded_model_ids(url: str) -> set[str]:
    """The ids a running broker at ``url`` reports loaded (``GET /v1/models``); none when it does not answer.
    For the brokers' ``models list`` commands."""
    import httpx

    try:
        cards = httpx.get(f"{url.rstrip('/')}/v1/models", timeout=1.0).json()["data"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return set()
    return {card["id"] for card in cards if isinstance(card, dict) and card.get("loaded")}
