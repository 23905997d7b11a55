"""``echo``: answers by restating what it heard, so the loop runs with nothing else installed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from conversation.responders.base import ReplyRequest

_WORD = re.compile(r"\S+\s*")


def echo_text(text: str) -> str:
    """The echo reply to ``text``."""
    said = " ".join(text.split())
    if not said:
        return "I did not hear anything."
    if said[-1] not in ".!?":
        said += "."
    return f"You said: {said}"


class EchoResponder:
    """Streams ``You said: ...`` word by word, like a model would."""

    name = "echo"

    async def start(self) -> None:
        """Nothing to load."""

    async def reply(self, request: ReplyRequest) -> AsyncIterator[str]:
        """The echo, one word at a time."""
        for match in _WORD.finditer(echo_text(request.text)):
            yield match.group()
            await asyncio.sleep(0)  # a real responder yields to the loop between tokens too

    async def aclose(self) -> None:
        """Nothing to release."""
