"""What the conversation routes share: the service's client and seed 000's pending reply audio."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.conversations.client import ConversationClient
from gateway.conversations.reply import Reply, SpokenPiece


@dataclass
class DeviceTurn:
    """Seed 000: the reply to a device's last ``/upload``, its audio waiting for ``GET /audio``."""

    reply: Reply
    pieces: list[SpokenPiece] = field(default_factory=list)
    done: bool = False
    error: dict[str, str] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    touched: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Wake a waiting ``GET /audio``."""
        self.touched = time.monotonic()
        self.changed.set()


@dataclass
class Conversations:
    """The lifespan's conversation resources."""

    client: ConversationClient
    devices: dict[str, DeviceTurn] = field(default_factory=dict)
    """Seed 000 turns by ``session`` (in this gateway replica's memory: route a device to one replica)."""

    async def expire(self, ttl: float) -> None:
        """Forget device turns nobody fetched for ``ttl`` seconds."""
        now = time.monotonic()
        for key, turn in list(self.devices.items()):
            if now - turn.touched > ttl:
                self.devices.pop(key, None)
                if turn.task is not None and not turn.task.done():
                    await turn.reply.cancel()
                    turn.task.cancel()

    async def close(self) -> None:
        """Stop every running device turn."""
        for turn in self.devices.values():
            if turn.task is not None:
                turn.task.cancel()
        await asyncio.gather(*(t.task for t in self.devices.values() if t.task), return_exceptions=True)
        self.devices.clear()


def get_conversations(connection: HTTPConnection) -> Conversations:
    """The lifespan's conversation resources."""
    found: Conversations = connection.state.conversations
    return found


ConversationsDep = Annotated[Conversations, Depends(get_conversations)]
