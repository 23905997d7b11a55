"""The conversation store: every read and write of conversations and messages, scoped by owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conversation.models import Conversation, Message, ToolCall
from voicestack_common.errors import ClientError


class ConversationNotFound(ClientError):
    """No such conversation for this owner (another owner's counts as none: nothing is confirmed)."""

    status_code: ClassVar[int] = 404
    default_code: ClassVar[str] = "conversation_not_found"


class MessageNotFound(ClientError):
    """No such message in this owner's conversation."""

    status_code: ClassVar[int] = 404
    default_code: ClassVar[str] = "message_not_found"


class ConversationExists(ClientError):
    """A conversation with this id exists already."""

    status_code: ClassVar[int] = 409
    default_code: ClassVar[str] = "conversation_exists"


def now() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh conversation or message id."""
    return uuid.uuid4().hex


class UnknownToolCall(ClientError):
    """A tool output names no call of this conversation that waits for one."""

    status_code: ClassVar[int] = 422
    default_code: ClassVar[str] = "unknown_tool_call"


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call of an earlier message, as a responder sees it."""

    call_id: str
    name: str
    arguments: str
    result: str | None
    """The result, or why it failed (``None``: none, e.g. a client tool whose output never came)."""
    ok: bool = True


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One earlier message, as a responder sees it."""

    role: str
    text: str
    tool_calls: tuple[ToolUse, ...] = ()


class Store:
    """Conversations and messages; every call names the owner it acts for."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create(
        self, owner: str, *, conversation_id: str | None = None, user_id: str | None = None, title: str | None = None
    ) -> Conversation:
        """A new conversation (409 when the id is taken, by anyone)."""
        stamp = now()
        row = Conversation(
            id=conversation_id or new_id(),
            owner=owner,
            user_id=user_id,
            title=title,
            created_at=stamp,
            updated_at=stamp,
        )
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConversationExists(f"conversation {row.id!r} exists already") from None
        return row

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        """The owner's conversation, else 404."""
        async with self.sessions() as session:
            row = await session.get(Conversation, conversation_id)
        if row is None or row.owner != owner:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return row

    async def get_or_create(self, owner: str, conversation_id: str, user_id: str | None) -> Conversation:
        """The owner's conversation, created on first use; another owner's id is still a 404."""
        try:
            return await self.get(owner, conversation_id)
        except ConversationNotFound:
            try:
                return await self.create(owner, conversation_id=conversation_id, user_id=user_id)
            except ConversationExists:
                return await self.get(owner, conversation_id)  # a concurrent create, or someone else's

    async def conversations(self, owner: str, *, limit: int = 50, offset: int = 0) -> tuple[list[Conversation], int]:
        """The owner's conversations, most recently active first, and how many there are."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Conversation)
                .where(Conversation.owner == owner)
                .order_by(Conversation.updated_at.desc(), Conversation.id)
                .limit(limit)
                .offset(offset)
            )
            total = await session.scalar(
                select(func.count()).select_from(Conversation).where(Conversation.owner == owner)
            )
            return list(rows), int(total or 0)

    async def messages(self, conversation_id: str) -> list[Message]:
        """A conversation's messages in order."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
            )
            return list(rows)

    async def message(self, message_id: str) -> Message:
        """One message by id (internal: callers have checked the conversation)."""
        async with self.sessions() as session:
            row = await session.get(Message, message_id)
        if row is None:
            raise ConversationNotFound(f"no message {message_id!r}")
        return row

    async def history(self, conversation_id: str, limit: int) -> list[HistoryItem]:
        """The last ``limit`` messages that have text, oldest first (context for a responder)."""
        if limit == 0:
            return []
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, (Message.text != "") | Message.tool_calls.any())
                .order_by(Message.seq.desc())
                .limit(limit)
            )
            return [
                HistoryItem(
                    row.role,
                    row.text,
                    tuple(ToolUse(c.call_id, c.name, c.arguments, c.result, c.status == "ok") for c in row.tool_calls),
                )
                for row in reversed(list(rows))
            ]

    async def delete(self, owner: str, conversation_id: str) -> None:
        """Delete the owner's conversation and its messages, else 404."""
        await self.get(owner, conversation_id)
        async with self.sessions.begin() as session:
            await session.execute(delete(ToolCall).where(ToolCall.conversation_id == conversation_id))
            await session.execute(delete(Message).where(Message.conversation_id == conversation_id))
            await session.execute(delete(Conversation).where(Conversation.id == conversation_id))

    async def delete_message(self, owner: str, conversation_id: str, message_id: str) -> None:
        """Delete one message of the owner's conversation (404 for an unknown conversation or message).

        A reply still streaming when deleted stays deleted: its end is written to no row."""
        await self.get(owner, conversation_id)
        async with self.sessions.begin() as session:
            await session.execute(
                delete(ToolCall).where(ToolCall.message_id == message_id, ToolCall.conversation_id == conversation_id)
            )
            gone = await session.execute(
                delete(Message).where(Message.id == message_id, Message.conversation_id == conversation_id)
            )
            if not gone.rowcount:  # type: ignore[attr-defined]
                raise MessageNotFound(f"no message {message_id!r} in this conversation")
            await session.execute(
                update(Conversation).where(Conversation.id == conversation_id).values(updated_at=now())
            )

    async def add_message(self, conversation_id: str, role: str, text: str, **fields: Any) -> Message:
        """Append a message (the next sequence number; retried if a concurrent append took it)."""
        for _ in range(5):
            stamp = now()
            try:
                async with self.sessions.begin() as session:
                    # Touch the conversation first: the row lock (PostgreSQL) or the write lock (SQLite)
                    # queues concurrent appends here, so the next number is read after the last commit.
                    await session.execute(
                        update(Conversation).where(Conversation.id == conversation_id).values(updated_at=stamp)
                    )
                    seq = await session.scalar(
                        select(func.coalesce(func.max(Message.seq), 0)).where(
                            Message.conversation_id == conversation_id
                        )
                    )
                    row = Message(
                        id=new_id(),
                        conversation_id=conversation_id,
                        seq=int(seq or 0) + 1,
                        role=role,
                        text=text,
                        created_at=stamp,
                        tool_calls=[],
                        **{"status": "complete", "interrupted": False, "completed_at": stamp, **fields},
                    )
                    session.add(row)
                return row
            except IntegrityError:
                continue
        raise RuntimeError("could not append a message: too many concurrent writers")

    async def finish_reply(
        self, message_id: str, text: str, *, status: str, error_code: str | None = None, generated: str | None = None
    ) -> None:
        """Record how a reply ended; a reply already marked interrupted keeps its heard text."""
        values: dict[str, Any] = {"completed_at": now(), "generated_text": generated if generated is not None else text}
        if error_code:
            values["error_code"] = error_code
        async with self.sessions.begin() as session:
            await session.execute(update(Message).where(Message.id == message_id).values(**values))
            await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == "streaming")
                .values(text=text, status=status, interrupted=status == "interrupted")
            )

    async def interrupt(self, owner: str, conversation_id: str, message_id: str, heard_text: str) -> Message:
        """Mark an assistant message interrupted: its text becomes what the user heard."""
        await self.get(owner, conversation_id)
        async with self.sessions.begin() as session:
            row = await session.get(Message, message_id)
            if row is None or row.conversation_id != conversation_id or row.role != "assistant":
                raise ConversationNotFound(f"no assistant message {message_id!r} in this conversation")
            row.text = heard_text
            row.heard_text = heard_text
            row.interrupted = True
            row.status = "interrupted"
            row.completed_at = row.completed_at or now()
        return row

    async def begin_tool_call(
        self, conversation_id: str, message_id: str, *, call_id: str, name: str, arguments: str, kind: str
    ) -> tuple[ToolCall, bool]:
        """Store a call before it runs (``running``, or ``pending`` for a client tool); when the conversation
        has this call id already, that call and ``True``: it has run, or is running, and must not run again."""
        try:
            async with self.sessions.begin() as session:
                seq = await session.scalar(select(func.count()).where(ToolCall.message_id == message_id))
                row = ToolCall(
                    conversation_id=conversation_id,
                    message_id=message_id,
                    seq=int(seq or 0),
                    call_id=call_id,
                    name=name,
                    arguments=arguments,
                    kind=kind,
                    status="pending" if kind == "client" else "running",
                    created_at=now(),
                )
                session.add(row)
            return row, False
        except IntegrityError:
            async with self.sessions() as session:
                found = await session.scalar(
                    select(ToolCall).where(ToolCall.conversation_id == conversation_id, ToolCall.call_id == call_id)
                )
            if found is None:
                raise
            return found, True

    async def finish_tool_call(
        self, row_id: int, *, status: str, result: str | None, error_code: str | None = None
    ) -> ToolCall:
        """Record how a call ended."""
        async with self.sessions.begin() as session:
            row = await session.get(ToolCall, row_id)
            if row is None:
                raise MessageNotFound(f"no tool call {row_id}")  # its message was deleted meanwhile
            row.status, row.result, row.error_code, row.completed_at = status, result, error_code, now()
        return row

    async def give_outputs(self, conversation_id: str, outputs: dict[str, str]) -> None:
        """Store the outputs of client tools (``call_id`` → output); 422 ``unknown_tool_call`` when one names
        no call of the conversation waiting for its output (nothing is stored then)."""
        async with self.sessions.begin() as session:
            rows = {
                row.call_id: row
                for row in await session.scalars(
                    select(ToolCall).where(
                        ToolCall.conversation_id == conversation_id,
                        ToolCall.call_id.in_(list(outputs)),
                        ToolCall.kind == "client",
                        ToolCall.status == "pending",
                    )
                )
            }
            if missing := [call_id for call_id in outputs if call_id not in rows]:
                raise UnknownToolCall(
                    f"no call waiting for its output has the id {missing[0]!r}", details={"call_id": missing[0]}
                )
            stamp = now()
            for call_id, output in outputs.items():
                row = rows[call_id]
                row.status, row.result, row.completed_at = "ok", output, stamp

    async def purge(self, older_than_days: float) -> int:
        """Delete conversations untouched for ``older_than_days``; how many went."""
        cutoff = now() - timedelta(days=older_than_days)
        async with self.sessions.begin() as session:
            ids = list(await session.scalars(select(Conversation.id).where(Conversation.updated_at < cutoff)))
            if ids:
                await session.execute(delete(ToolCall).where(ToolCall.conversation_id.in_(ids)))
                await session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
                await session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
        return len(ids)

    async def ping(self) -> None:
        """A round trip to the database (readiness)."""
        async with self.sessions() as session:
            await session.execute(select(1))
