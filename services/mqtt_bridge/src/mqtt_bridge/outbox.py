"""The durable outbox: accepted events wait in SQLite (WAL) until the broker acknowledges them.

An event is committed here before ``POST /v1/events`` answers 202, marked
``inflight`` while its publish awaits the PUBACK, and deleted only after it.
Rows still ``inflight`` when the process died go back to ``pending`` at start,
so a kill at any instant costs at most a redelivery with the same ``event_id``.
The ids themselves are remembered for ``dedup_retention`` so a retried POST is
accepted once. A row is an event (published as JSON to its type's topic) or a
message of ``POST /v1/publish`` (its own topic, raw payload, QoS and retain flag).
All SQLite work runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from voicestack_common.events import PublishRequest, SpeechEvent

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'inflight')),
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    accepted_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_age ON seen (accepted_at);
"""
# Schema changes after _SCHEMA, in order; ``PRAGMA user_version`` counts those applied, so an
# outbox written by an older bridge (its pending rows included) opens as it is and is brought up.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: rows of POST /v1/publish carry their own topic (NULL: the event type's), QoS and retain flag.
    (
        "ALTER TABLE outbox ADD COLUMN topic TEXT",
        "ALTER TABLE outbox ADD COLUMN qos INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE outbox ADD COLUMN retain INTEGER NOT NULL DEFAULT 0",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
# The ``kind`` of a row from POST /v1/publish (events have their type).
PUBLISH_KIND = "publish"


class OutboxFull(Exception):
    """The outbox holds ``outbox_max_events`` already."""


class OutboxLocked(RuntimeError):
    """Another process has the outbox file open."""


class OutboxTooNew(RuntimeError):
    """The outbox was written by a newer bridge, whose rows this one may not read right."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row claimed for publishing."""

    seq: int
    event_id: str
    kind: str
    payload: bytes
    accepted_at: float
    attempts: int
    topic: str | None = None
    """Set for a message of ``POST /v1/publish``; None for an event (its type's topic)."""
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts kept in memory, so /metrics never waits for the database."""

    depth: int
    inflight: int
    oldest_accepted_at: float | None


class OutboxStore:
    """The SQLite side; every method blocks, and one thread at a time may call them."""

    def __init__(
        self, path: Path, *, synchronous: str = "FULL", max_events: int = 100_000, dedup_retention: float = 86_400.0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.durable = synchronous == "FULL"
        self.max_events = max_events
        self.dedup_retention = dedup_retention
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0.5)
        try:
            # Exclusive before WAL: no shared-memory file, and a second bridge on the same file
            # fails here instead of publishing the same rows.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            # Only acceptance must reach the disk before we answer; claims and deletions may be lost
            # to a power cut (that costs a redelivery), so they commit without their own fsync.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
            requeued = self._db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'inflight'").rowcount
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise OutboxLocked(f"outbox {path} is in use by another process") from None
            raise
        self.requeued = requeued
        self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._inflight = 0
        self._oldest = self._oldest_accepted()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self._db.close()
            raise OutboxTooNew(
                f"outbox {self.path} has schema version {version}; this bridge knows up to {SCHEMA_VERSION}"
            )
        for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self._transaction(durable=True):
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[None]:
        if durable:  # this commit syncs the WAL, and with it every frame written before
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")

    def _oldest_accepted(self) -> float | None:
        row = self._db.execute("SELECT accepted_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None

    @property
    def stats(self) -> OutboxStats:
        """Depth, in-flight count and the oldest waiting event's acceptance time."""
        return OutboxStats(self._depth, self._inflight, self._oldest)

    def accept(
        self,
        event_id: str,
        kind: str,
        payload: bytes,
        now: float,
        *,
        topic: str | None = None,
        qos: int = 1,
        retain: bool = False,
    ) -> bool:
        """Store a new row; False (and nothing stored) when ``event_id`` was accepted before.

        ``topic`` (with ``qos`` and ``retain``) makes it a message published as it is, there."""
        with self._transaction(durable=self.durable):
            if self._db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event_id,)).fetchone():
                return False
            if self._depth >= self.max_events:
                raise OutboxFull(f"the outbox holds {self._depth} events, its limit")
            self._db.execute("INSERT INTO seen (event_id, accepted_at) VALUES (?, ?)", (event_id, now))
            self._db.execute(
                "INSERT INTO outbox (event_id, kind, payload, accepted_at, topic, qos, retain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, kind, payload, now, topic, qos, int(retain)),
            )
        self._depth += 1
        if self._oldest is None:
            self._oldest = now
        return True

    def claim(self, limit: int) -> list[StoredEvent]:
        """Mark up to ``limit`` pending events in flight, oldest first, and return them."""
        with self._transaction():
            rows = self._db.execute(
                "SELECT seq, event_id, kind, payload, accepted_at, attempts, topic, qos, retain FROM outbox "
                "WHERE state = 'pending' ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            if rows:
                self._db.executemany(
                    "UPDATE outbox SET state = 'inflight', attempts = attempts + 1 WHERE seq = ?",
                    [(row[0],) for row in rows],
                )
        self._inflight += len(rows)
        return [
            StoredEvent(seq, event_id, kind, bytes(payload), accepted_at, attempts + 1, topic, qos, bool(retain))
            for seq, event_id, kind, payload, accepted_at, attempts, topic, qos, retain in rows
        ]

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker has them: delete."""
        params = [(seq,) for seq in seqs]
        if not params:
            return
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", params)
        self._depth -= len(params)
        self._inflight -= len(params)
        self._oldest = self._oldest_accepted()

    def release(self, seqs: Iterable[int]) -> None:
        """Publishing failed: back to pending, to be retried first."""
        params = [(seq,) for seq in seqs]
        if not params:
            return
        with self._transaction():
            self._db.executemany("UPDATE outbox SET state = 'pending' WHERE seq = ?", params)
        self._inflight -= len(params)

    def requeue(self) -> int:
        """Return every in-flight event to pending (a new connection starts with none in flight)."""
        with self._transaction():
            count = self._db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'inflight'").rowcount
        self._inflight = 0
        return int(count)

    def prune(self, now: float) -> int:
        """Forget delivered event ids older than the retention."""
        with self._transaction():
            return self._db.execute(
                "DELETE FROM seen WHERE accepted_at < ? AND event_id NOT IN (SELECT event_id FROM outbox)",
                (now - self.dedup_retention,),
            ).rowcount

    def close(self) -> None:
        """Checkpoint and close the database."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


class Outbox:
    """The async face of the store: its work runs on one dedicated thread."""

    def __init__(
        self, path: Path, *, synchronous: str = "FULL", max_events: int = 100_000, dedup_retention: float = 86_400.0
    ) -> None:
        self._args: dict[str, Any] = {
            "synchronous": synchronous,
            "max_events": max_events,
            "dedup_retention": dedup_retention,
        }
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._store: OutboxStore | None = None
        self._new = asyncio.Event()

    async def _run(self, fn: Any, *args: Any) -> Any:
        # Shielded: once submitted, a write completes even if the caller is cancelled meanwhile
        # (a lost connection cancels the publisher), so memory and database never disagree.
        return await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args)))

    async def open(self) -> None:
        """Open (or create) the database and requeue what was in flight at the last stop."""
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self._executor, partial(OutboxStore, self.path, **self._args))
        if self._store.stats.depth:
            self._new.set()

    @property
    def store(self) -> OutboxStore:
        """The open store."""
        if self._store is None:
            raise RuntimeError("the outbox is not open")
        return self._store

    @property
    def stats(self) -> OutboxStats:
        """In-memory counts."""
        return self.store.stats

    async def accept(self, event: SpeechEvent) -> bool:
        """Commit ``event`` durably; False when its id was accepted before."""
        payload = event.model_dump_json().encode()
        stored: bool = await self._run(self.store.accept, event.event_id, event.type, payload, time.time())
        if stored:
            self._new.set()
        return stored

    async def accept_message(self, request: PublishRequest) -> bool:
        """Commit a message of ``POST /v1/publish`` durably; False when its id was accepted before."""
        stored: bool = await self._run(
            partial(
                self.store.accept,
                request.event_id,
                PUBLISH_KIND,
                request.payload.encode(),
                time.time(),
                topic=request.topic,
                qos=request.qos,
                retain=request.retain,
            )
        )
        if stored:
            self._new.set()
        return stored

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Take pending events for publishing."""
        self._new.clear()
        claimed: list[StoredEvent] = await self._run(self.store.claim, limit)
        return claimed

    async def ack(self, seqs: list[int]) -> None:
        """Delete delivered events."""
        await self._run(self.store.ack, seqs)

    async def release(self, seqs: list[int]) -> None:
        """Return undelivered events to pending."""
        if seqs:
            await self._run(self.store.release, seqs)
            self._new.set()

    async def requeue(self) -> int:
        """Return in-flight events to pending."""
        count: int = await self._run(self.store.requeue)
        return count

    async def prune(self) -> int:
        """Forget old delivered ids."""
        pruned: int = await self._run(self.store.prune, time.time())
        return pruned

    async def wait_for_new(self, timeout: float) -> None:
        """Return when an event was accepted (or released), or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new.wait(), timeout)

    async def close(self) -> None:
        """Close the database and its thread."""
        if self._store is not None:
            await self._run(self._store.close)
            self._store = None
        self._executor.shutdown(wait=True)
