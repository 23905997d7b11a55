"""The conversation service, as the gateway calls it: CRUD passed through, turns read as SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.replicas import ReplicaSet
from voicestack_common.errors import UpstreamError, VoicestackError

OWNER_HEADER = "X-Voicestack-Owner"
# Without API keys every caller is one owner: the conversations are the stack's.
ANONYMOUS = "anonymous"


def owner_of(caller: str) -> str:
    """The store's owner for a gateway caller: the API key's id, else everyone's ``anonymous``."""
    return caller if caller.startswith("key:") else ANONYMOUS


class ConversationsDisabled(VoicestackError):
    """``GATEWAY_CONVERSATION_URLS`` is empty."""

    status_code = 503
    default_code = "conversations_disabled"


@dataclass
class TurnEvent:
    """One event of a turn's stream: ``turn``, ``delta``, ``done`` or ``error``."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConversationClient:
    """Calls to the conversation service on behalf of one owner at a time."""

    upstream: ReplicaSet | None

    def _upstream(self) -> ReplicaSet:
        if self.upstream is None:
            raise ConversationsDisabled("conversations are off: set GATEWAY_CONVERSATION_URLS")
        return self.upstream

    async def call(
        self, method: str, path: str, owner: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request; the service's errors come back as ours (404 stays 404)."""
        headers = {OWNER_HEADER: owner}

        def args() -> dict[str, Any]:
            found: dict[str, Any] = {"headers": dict(headers)}
            if json_body is not None:
                found["json"] = json_body
            if params:
                found["params"] = params
            return found

        return await self._upstream().request(method, path, args, idempotent=method in ("GET", "DELETE"))

    async def responders(self) -> dict[str, Any]:
        """What clients may choose: ``{default, allowed, options}``."""
        answer: dict[str, Any] = (await self.call("GET", "/v1/responders", ANONYMOUS)).json()
        return answer

    async def turn(self, owner: str, conversation_id: str, body: dict[str, Any]) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events as they stream; closing the iterator closes the stream (the reply stops)."""
        response = await self._upstream().request(
            "POST",
            f"/v1/conversations/{conversation_id}/turns",
            lambda: {"headers": {OWNER_HEADER: owner}, "json": body},
            idempotent=False,
            stream=True,
        )
        try:
            kind, lines = "message", []
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    lines.append(line[5:].strip())
                elif not line and lines:
                    yield TurnEvent(kind, _parse("\n".join(lines)))
                    kind, lines = "message", []
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout):
            raise UpstreamError(
                "the conversation service dropped the reply stream", code="upstream_unavailable"
            ) from None
        finally:
            await response.aclose()

    async def interrupt(self, owner: str, conversation_id: str, message_id: str, heard: str) -> None:
        """Store what was heard of an interrupted reply."""
        await self.call(
            "POST",
            f"/v1/conversations/{conversation_id}/messages/{message_id}/interrupt",
            owner,
            json_body={"heard_text": heard},
        )


def _parse(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise UpstreamError(
            "the conversation service sent an event that is not JSON", code="upstream_invalid_response"
        ) from None
    if not isinstance(value, dict):
        raise UpstreamError(
            "the conversation service sent an event that is not an object", code="upstream_invalid_response"
        )
    return value
