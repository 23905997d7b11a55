"""The store on SQLite and on a real PostgreSQL: migrations, owners, messages, interruptions, retention."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import update

from conversation.db import create_engine, current_revision, migrate
from conversation.deliveries import Deliveries, Next, Piece
from conversation.models import Conversation
from conversation.store import ConversationExists, ConversationNotFound, Store, now

T = TypeVar("T")


def run(database_url: str, scenario: Callable[[Store], Awaitable[T]]) -> T:
    """Migrate a fresh database, run ``scenario`` on a store over it."""

    async def main() -> T:
        engine = create_engine(database_url)
        try:
            await migrate(engine)
            return await scenario(Store(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_migrations_reach_head_and_run_twice(database_url: str) -> None:
    async def scenario(store: Store) -> str | None:
        await migrate(store.engine)  # a second start migrates nothing
        return await current_revision(store.engine)

    assert run(database_url, scenario) == "0003"


def test_owner_sees_only_own_conversations(database_url: str) -> None:
    async def scenario(store: Store) -> None:
        mine = await store.create("key:a", user_id="u1", title="first")
        await store.create("key:b", conversation_id="theirs")
        rows, total = await store.conversations("key:a")
        assert [r.id for r in rows] == [mine.id]
        assert total == 1
        with pytest.raises(ConversationNotFound):
            await store.get("key:a", "theirs")
        with pytest.raises(ConversationNotFound):
            await store.delete("key:a", "theirs")
        with pytest.raises(ConversationExists):
            await store.create("key:a", conversation_id="theirs")
        # first use with someone else's id is still not theirs to read
        with pytest.raises(ConversationNotFound):
            await store.get_or_create("key:a", "theirs", None)
        await store.get("key:b", "theirs")

    run(database_url, scenario)


def test_messages_history_and_interruption(database_url: str) -> None:
    async def scenario(store: Store) -> None:
        conversation = await store.get_or_create("anonymous", "c-1", "user-7")
        assert conversation.user_id == "user-7"
        user = await store.add_message("c-1", "user", "What time is it?", transcript={"language": "en"})
        reply = await store.add_message("c-1", "assistant", "", status="streaming", responder="echo")
        assert (user.seq, reply.seq) == (1, 2)
        # the stream ends first (the gateway went away), then the gateway says what was heard
        await store.finish_reply(reply.id, "It is noon. And the sun shines.", status="interrupted")
        heard = await store.interrupt("anonymous", "c-1", reply.id, "It is noon.")
        assert heard.interrupted
        assert heard.text == "It is noon."
        # the other order: what was heard arrives before the stream's end, and is kept
        second = await store.add_message("c-1", "assistant", "", status="streaming", responder="echo")
        await store.interrupt("anonymous", "c-1", second.id, "Well")
        await store.finish_reply(second.id, "Well, let me think.", status="interrupted")
        messages = await store.messages("c-1")
        assert [(m.role, m.text, m.interrupted) for m in messages] == [
            ("user", "What time is it?", False),
            ("assistant", "It is noon.", True),
            ("assistant", "Well", True),
        ]
        assert messages[1].generated_text == "It is noon. And the sun shines."
        assert messages[2].generated_text == "Well, let me think."
        assert messages[0].transcript == {"language": "en"}
        assert messages[0].created_at.tzinfo is not None
        history = await store.history("c-1", 2)
        assert [(h.role, h.text) for h in history] == [("assistant", "It is noon."), ("assistant", "Well")]

    run(database_url, scenario)


def test_concurrent_appends_keep_order(database_url: str) -> None:
    async def scenario(store: Store) -> list[int]:
        await store.create("anonymous", conversation_id="busy")
        await asyncio.gather(*(store.add_message("busy", "user", f"m{n}") for n in range(6)))
        return [m.seq for m in await store.messages("busy")]

    assert run(database_url, scenario) == [1, 2, 3, 4, 5, 6]


def test_delete_and_retention_purge(database_url: str) -> None:
    async def scenario(store: Store) -> None:
        old = await store.create("anonymous", conversation_id="old")
        await store.add_message(old.id, "user", "hello")
        await store.create("anonymous", conversation_id="new")
        async with store.sessions.begin() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == "old").values(updated_at=now() - timedelta(days=40))
            )
        assert await store.purge(30) == 1
        assert await store.messages("old") == []
        rows, _ = await store.conversations("anonymous")
        assert [r.id for r in rows] == ["new"]
        await store.delete("anonymous", "new")
        assert (await store.conversations("anonymous"))[1] == 0

    run(database_url, scenario)


def test_concurrent_takes_hand_each_piece_out_once(database_url: str) -> None:
    """Seed 000's ``GET /audio`` from several replicas at once: no piece twice, none lost, no error."""

    async def scenario(store: Store) -> list[Next]:
        deliveries = Deliveries(store)
        turn = await deliveries.begin("anonymous", "kitchen", ttl=60, conversation_id=None)
        for index in range(4):
            await deliveries.add("anonymous", "kitchen", turn, Piece(index, f"piece {index}", "wav", 24_000, b"RIFF"))
        await deliveries.finish("anonymous", "kitchen", turn, error_code=None, error_message=None)
        return list(await asyncio.gather(*(deliveries.take("anonymous", "kitchen") for _ in range(8))))

    taken = run(database_url, scenario)
    pieces = sorted(n.piece.index for n in taken if n.piece is not None)
    assert pieces == [0, 1, 2, 3]
    assert sorted(n.state for n in taken if n.piece is None) == ["done"] + ["none"] * 3
