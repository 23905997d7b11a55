"""What the conversation routes share: the service's client, and the seed 000 replies this replica makes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.conversations.client import ConversationClient
from gateway.usecases.spoken_reply import Reply


@dataclass
class DeviceTurn:
    """Seed 000: a reply this replica is making for a device's ``/upload``; its audio goes to the
    conversation service's delivery (``/v1/deliveries``), where ``GET /audio`` on any replica takes it."""

    reply: Reply
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Stop making the reply (it is stored interrupted, as far as its audio was delivered)."""
        await self.reply.cancel()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class Conversations:
    """The lifespan's conversation resources."""

    client: ConversationClient
    devices: dict[str, DeviceTurn] = field(default_factory=dict)
    """Replies this replica is making, by ``owner/session``: a new upload here stops the old one at once (one
    on another replica stops when the service answers its next write with ``delivery_superseded``)."""

    async def close(self) -> None:
        """Stop every running device turn."""
        turns = list(self.devices.values())
        self.devices.clear()
        for turn in turns:
            if turn.task is not None:
                turn.task.cancel()
        await asyncio.gather(*(t.task for t in turns if t.task), return_exceptions=True)


def get_conversations(connection: HTTPConnection) -> Conversations:
    """The lifespan's conversation resources."""
    found: Conversations = connection.state.conversations
    return found


ConversationsDep = Annotated[Conversations, Depends(get_conversations)]
