"""The outbox on its own: accept once, claim, acknowledge, release, survive a crash, bounds."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from devkit.mqtt_kit import make_event
from mqtt_bridge.outbox import Outbox, OutboxFull, OutboxLocked, OutboxStore


def test_an_event_is_accepted_once_even_after_delivery(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db")
    assert store.accept("e1", "transcription", b"{}", time.time()) is True
    assert store.accept("e1", "transcription", b"{}", time.time()) is False
    [claimed] = store.claim(10)
    store.ack([claimed.seq])
    assert store.accept("e1", "transcription", b"{}", time.time()) is False
    assert store.stats.depth == 0


def test_claim_ack_release_keep_order_and_counts(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db")
    for i in range(5):
        store.accept(f"e{i}", "synthesis" if i % 2 else "transcription", f'{{"n": {i}}}'.encode(), 100.0 + i)
    first = store.claim(3)
    assert [e.event_id for e in first] == ["e0", "e1", "e2"]
    assert (first[1].kind, first[1].payload, first[0].attempts) == ("synthesis", b'{"n": 1}', 1)
    assert store.stats.depth == 5
    assert store.stats.inflight == 3
    store.ack([first[0].seq])
    store.release([e.seq for e in first[1:]])
    assert store.stats.oldest_accepted_at == 101.0
    again = store.claim(10)
    assert [e.event_id for e in again] == ["e1", "e2", "e3", "e4"]
    assert again[0].attempts == 2
    store.ack([e.seq for e in again])
    final = store.stats
    assert (final.depth, final.inflight, final.oldest_accepted_at) == (0, 0, None)


def test_in_flight_events_are_pending_again_after_a_crash(tmp_path: Path) -> None:
    crashed = OutboxStore(tmp_path / "o.db")
    crashed.accept("e1", "transcription", b"{}", time.time())
    crashed.accept("e2", "transcription", b"{}", time.time())
    crashed.claim(1)
    crashed._db.close()  # no checkpoint, no cleanup: what SIGKILL leaves
    reopened = OutboxStore(tmp_path / "o.db")
    assert reopened.requeued == 1
    assert (reopened.stats.depth, reopened.stats.inflight) == (2, 0)
    assert [e.event_id for e in reopened.claim(10)] == ["e1", "e2"]


def test_a_full_outbox_refuses_new_events_but_still_recognises_old_ones(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db", max_events=2)
    store.accept("e1", "transcription", b"{}", time.time())
    store.accept("e2", "transcription", b"{}", time.time())
    with pytest.raises(OutboxFull):
        store.accept("e3", "transcription", b"{}", time.time())
    assert store.accept("e1", "transcription", b"{}", time.time()) is False
    assert store.stats.depth == 2


def test_old_ids_are_forgotten_only_after_delivery(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db", dedup_retention=10)
    store.accept("delivered", "transcription", b"{}", 1000.0)
    store.accept("waiting", "transcription", b"{}", 1000.0)
    store.ack([store.claim(1)[0].seq])
    assert store.prune(now=1005.0) == 0
    assert store.prune(now=1011.0) == 1
    assert store.accept("delivered", "transcription", b"{}", 1012.0) is True
    assert store.accept("waiting", "transcription", b"{}", 1012.0) is False


def test_a_second_process_cannot_open_the_same_outbox(tmp_path: Path) -> None:
    first = OutboxStore(tmp_path / "o.db")
    with pytest.raises(OutboxLocked):
        OutboxStore(tmp_path / "o.db")
    first.close()
    OutboxStore(tmp_path / "o.db").close()


def test_the_database_is_wal_with_the_configured_sync(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db", synchronous="NORMAL")
    assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._db.execute("PRAGMA synchronous").fetchone() == (1,)
    store.close()
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_async_outbox_stores_the_event_json(tmp_path: Path) -> None:
    event = make_event()

    async def scenario() -> None:
        outbox = Outbox(tmp_path / "o.db")
        await outbox.open()
        assert await outbox.accept(event) is True
        assert await outbox.accept(event) is False
        await outbox.wait_for_new(1.0)
        [claimed] = await outbox.claim(10)
        assert claimed.payload == event.model_dump_json().encode()
        assert await outbox.requeue() == 1
        await outbox.close()

    asyncio.run(scenario())
