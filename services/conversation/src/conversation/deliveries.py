"""Seed 000's pending reply audio, kept where every gateway replica reaches it.

A device's ``POST /upload`` (on any gateway replica) begins a delivery for its ``(owner, session)``;
the replica making the reply stores each spoken piece here as it is synthesized, then marks the
delivery done (or failed). ``GET /audio`` (on any replica) takes the next piece, which is deleted as
it is taken; once the reply is done and every piece taken, the delivery is gone. A new upload of the
same device replaces its delivery: the replica still writing the old one is told so (409
``delivery_superseded``) and stops. A delivery nobody touches for its ``ttl`` expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversation.models import Delivery, DeliveryPiece
from conversation.store import Store, now
from voicestack_common.errors import ClientError


class DeliverySuperseded(ClientError):
    """The delivery was replaced by a newer upload, or has expired: stop writing to it."""

    status_code: ClassVar[int] = 409
    default_code: ClassVar[str] = "delivery_superseded"


@dataclass(frozen=True, slots=True)
class Piece:
    """One spoken piece of a reply."""

    index: int
    text: str
    format: str
    sample_rate: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class Next:
    """What ``GET /audio`` gets: ``piece``, ``done``, ``failed`` (nothing was spoken), ``pending`` or ``none``."""

    state: str
    piece: Piece | None = None
    error_code: str | None = None
    error_message: str | None = None


class Deliveries:
    """Deliveries in the store's database (so any service replica serves any gateway replica)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed: dict[tuple[str, str], asyncio.Event] = {}

    def _notify(self, owner: str, session: str) -> None:
        event = self._changed.pop((owner, session), None)
        if event is not None:
            event.set()

    async def wait_change(self, owner: str, session: str, timeout: float) -> None:
        """Until a write of this service replica touches the delivery, or ``timeout`` (other replicas'
        writes are seen by the caller's next read)."""
        event = self._changed.setdefault((owner, session), asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def begin(self, owner: str, session: str, *, ttl: float, conversation_id: str | None) -> str:
        """A new delivery for the device (its earlier one, and every expired one, are dropped): the turn id."""
        turn = uuid.uuid4().hex
        async with self.store.sessions.begin() as db:
            expired = (await db.scalars(select(Delivery.turn).where(Delivery.expires_at < now()))).all()
            old = await db.get(Delivery, (owner, session), with_for_update=True)
            dropped = [*expired, *([old.turn] if old is not None else [])]
            if dropped:
                await db.execute(delete(DeliveryPiece).where(DeliveryPiece.turn.in_(dropped)))
                await db.execute(delete(Delivery).where(Delivery.turn.in_(dropped)))
                await db.flush()
            db.add(
                Delivery(
                    owner=owner,
                    session=session,
                    turn=turn,
                    conversation_id=conversation_id,
                    done=False,
                    stored=0,
                    ttl_seconds=ttl,
                    expires_at=now() + timedelta(seconds=ttl),
                )
            )
        self._notify(owner, session)
        return turn

    async def _current(self, db: AsyncSession, owner: str, session: str, turn: str) -> Delivery:
        row = await db.get(Delivery, (owner, session), with_for_update=True)
        if row is None or row.turn != turn or row.expires_at < now():
            raise DeliverySuperseded("this delivery was replaced by a newer upload or has expired")
        row.expires_at = now() + timedelta(seconds=row.ttl_seconds)
        return row

    async def add(self, owner: str, session: str, turn: str, piece: Piece) -> None:
        """Store one piece (409 when the delivery is no longer this turn's)."""
        async with self.store.sessions.begin() as db:
            row = await self._current(db, owner, session, turn)
            row.stored += 1
            db.add(
                DeliveryPiece(
                    turn=turn,
                    piece_index=piece.index,
                    text=piece.text,
                    format=piece.format,
                    sample_rate=piece.sample_rate,
                    audio=piece.audio,
                )
            )
        self._notify(owner, session)

    async def finish(
        self, owner: str, session: str, turn: str, *, error_code: str | None, error_message: str | None
    ) -> None:
        """The reply is complete (or failed): no more pieces come."""
        async with self.store.sessions.begin() as db:
            row = await self._current(db, owner, session, turn)
            row.done = True
            row.error_code, row.error_message = error_code, error_message
        self._notify(owner, session)

    async def take(self, owner: str, session: str) -> Next:
        """The next piece (deleted as it is taken), or where the delivery stands."""
        async with self.store.sessions.begin() as db:
            # Write before reading: concurrent takers (any replica) queue on the row lock (PostgreSQL)
            # or the write lock (SQLite) here, so each reads what the previous one left.
            await db.execute(
                update(Delivery)
                .where(Delivery.owner == owner, Delivery.session == session)
                .values(expires_at=Delivery.expires_at)
            )
            row = await db.get(Delivery, (owner, session), with_for_update=True)
            if row is None:
                return Next("none")
            if row.expires_at < now():
                await db.execute(delete(DeliveryPiece).where(DeliveryPiece.turn == row.turn))
                await db.delete(row)
                return Next("none")
            found = await db.scalars(
                select(DeliveryPiece).where(DeliveryPiece.turn == row.turn).order_by(DeliveryPiece.piece_index).limit(1)
            )
            piece = found.first()
            if piece is not None:
                await db.delete(piece)
                row.expires_at = now() + timedelta(seconds=row.ttl_seconds)
                return Next("piece", Piece(piece.piece_index, piece.text, piece.format, piece.sample_rate, piece.audio))
            if not row.done:
                return Next("pending")
            await db.delete(row)
            if row.error_code is not None and row.stored == 0:
                return Next("failed", error_code=row.error_code, error_message=row.error_message)
            return Next("done")
