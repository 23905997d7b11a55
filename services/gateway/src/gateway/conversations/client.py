"""The conversation service, as the gateway calls it: CRUD passed through, turns read as SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.replicas import ReplicaSet
from voicestack_common.errors import InvalidRequest, UpstreamError, VoicestackError

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

    async def check_responder(self, name: str | None, options: dict[str, Any]) -> None:
        """Refuse early (422) what a turn would be refused: a responder or an option the service does not
        allow (``responder_not_allowed``, ``option_not_allowed``), or a value out of its bounds
        (``invalid_option``, with ``details.option``)."""
        allowed = await self.responders()
        if name is not None and name not in allowed["allowed"]:
            raise InvalidRequest(
                f"responder {name!r} is not allowed here; allowed: {', '.join(allowed['allowed'])}",
                code="responder_not_allowed",
                details={"allowed": allowed["allowed"]},
            )
        limits: dict[str, dict[str, Any]] = allowed.get("limits") or {}
        for key, value in options.items():
            if key not in allowed["options"]:
                raise InvalidRequest(
                    f"option {key!r} is not allowed here; allowed: {', '.join(allowed['options']) or 'none'}",
                    code="option_not_allowed",
                    details={"option": key, "allowed": allowed["options"]},
                )
            limit = limits.get(key)
            if limit is None:
                continue
            size = len(value) if isinstance(value, str) else value
            if isinstance(size, int | float) and not limit["min"] <= size <= limit["max"]:
                what = "length" if limit["type"] == "string" else "value"
                raise InvalidRequest(
                    f"option {key!r}: {what} must be within [{limit['min']:g}, {limit['max']:g}]",
                    code="invalid_option",
                    details={"option": key, "min": limit["min"], "max": limit["max"]},
                )

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

    async def delete_message(self, owner: str, conversation_id: str, message_id: str) -> None:
        """Delete one stored message (404 ``message_not_found`` when it is not there)."""
        await self.call("DELETE", f"/v1/conversations/{conversation_id}/messages/{message_id}", owner)

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
