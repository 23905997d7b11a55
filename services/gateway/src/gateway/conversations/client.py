"""The conversation service, as the gateway calls it: the shared contract's bodies, turns read as SSE.

Its answers are read as the contract's models (``voicestack_common.contracts.conversation``); an answer
that does not fit is the service's fault (502 ``upstream_invalid_response``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.brokers import parse_answer
from gateway.replicas import ReplicaSet
from voicestack_common.contracts.conversation import (
    ANONYMOUS_OWNER,
    OWNER_HEADER,
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    DeliveryBegin,
    DeliveryDone,
    DeliveryNext,
    DeliveryPieceIn,
    DeliveryTurn,
    Interrupt,
    ResponderChoice,
    RespondersOut,
    TurnEvent,
    TurnRequest,
    check_choice,
    decode_turn_event,
)
from voicestack_common.errors import UpstreamError, VoicestackError
from voicestack_common.streaming import read_sse

# The service's responders change only when it restarts: their list is asked for at most this often.
RESPONDERS_TTL_S = 30.0


def owner_of(caller: str) -> str:
    """The store's owner for a gateway caller: the API key's id, else everyone's ``anonymous``."""
    return caller if caller.startswith("key:") else ANONYMOUS_OWNER


class ConversationsDisabled(VoicestackError):
    """``GATEWAY_CONVERSATION_URLS`` is empty."""

    status_code = 503
    default_code = "conversations_disabled"


@dataclass
class ConversationClient:
    """Calls to the conversation service on behalf of one owner at a time."""

    upstream: ReplicaSet | None
    _responders: tuple[float, RespondersOut] | None = field(default=None, repr=False)

    def _upstream(self) -> ReplicaSet:
        if self.upstream is None:
            raise ConversationsDisabled("conversations are off: set GATEWAY_CONVERSATION_URLS")
        return self.upstream

    async def call(
        self, method: str, path: str, owner: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request; the service's errors come back as ours (404 stays 404)."""

        def args() -> dict[str, Any]:
            found: dict[str, Any] = {"headers": {OWNER_HEADER: owner}}
            if json_body is not None:
                found["json"] = json_body
            if params:
                found["params"] = params
            return found

        return await self._upstream().request(method, path, args, idempotent=method in ("GET", "DELETE"))

    async def create(self, owner: str, body: ConversationCreate) -> ConversationOut:
        """A new conversation (409 ``conversation_exists`` when its id is taken)."""
        answer = await self.call("POST", "/v1/conversations", owner, json_body=body.model_dump(exclude_none=True))
        return parse_answer(ConversationOut, answer, "conversation service's")

    async def get(self, owner: str, conversation_id: str) -> ConversationDetail:
        """A conversation with its messages (404 ``conversation_not_found``)."""
        answer = await self.call("GET", f"/v1/conversations/{conversation_id}", owner)
        return parse_answer(ConversationDetail, answer, "conversation service's")

    async def responders(self) -> RespondersOut:
        """What clients may choose: ``{default, allowed, options, limits}`` (kept for ``RESPONDERS_TTL_S``)."""
        now = time.monotonic()
        if self._responders is not None and now - self._responders[0] < RESPONDERS_TTL_S:
            return self._responders[1]
        answer = await self.call("GET", "/v1/responders", ANONYMOUS_OWNER)
        found = parse_answer(RespondersOut, answer, "conversation service's responders")
        self._responders = (now, found)
        return found

    async def check(self, choice: ResponderChoice) -> None:
        """Refuse now (422) what a turn would be refused, by the check the service applies."""
        check_choice(choice, await self.responders())

    async def turn(self, owner: str, conversation_id: str, body: TurnRequest) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events as they stream; closing the iterator closes the stream (the reply stops)."""
        payload = body.model_dump(mode="json", exclude_unset=True)
        response = await self._upstream().request(
            "POST",
            f"/v1/conversations/{conversation_id}/turns",
            lambda: {"headers": {OWNER_HEADER: owner}, "json": payload},
            idempotent=False,
            stream=True,
        )
        try:
            async for sse in read_sse(response.aiter_lines()):
                try:
                    event = decode_turn_event(sse)
                except ValueError as exc:
                    raise UpstreamError(
                        f"the conversation service sent an event that does not fit: {exc}",
                        code="upstream_invalid_response",
                    ) from None
                if event is not None:
                    yield event
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
        path = f"/v1/conversations/{conversation_id}/messages/{message_id}/interrupt"
        await self.call("POST", path, owner, json_body=Interrupt(heard_text=heard).model_dump())

    # Seed 000's pending reply audio, kept by the service so that any gateway replica serves it.

    async def begin_delivery(self, owner: str, session: str, body: DeliveryBegin) -> DeliveryTurn:
        """A device's new delivery (its earlier one is replaced)."""
        answer = await self.call("PUT", f"/v1/deliveries/{session}", owner, json_body=body.model_dump(mode="json"))
        return parse_answer(DeliveryTurn, answer, "conversation service's")

    async def deliver(self, owner: str, session: str, piece: DeliveryPieceIn) -> None:
        """One piece of the reply's audio (409 ``delivery_superseded`` once the delivery was replaced)."""
        await self.call("POST", f"/v1/deliveries/{session}/pieces", owner, json_body=piece.model_dump(mode="json"))

    async def finish_delivery(self, owner: str, session: str, done: DeliveryDone) -> None:
        """No more pieces come (``done.error``: why the reply failed)."""
        await self.call("POST", f"/v1/deliveries/{session}/done", owner, json_body=done.model_dump(mode="json"))

    async def take(self, owner: str, session: str, wait: float) -> DeliveryNext:
        """The delivery's next piece (deleted as taken), or its state, waiting up to ``wait`` seconds."""
        path = f"/v1/deliveries/{session}/take"
        answer = await self.call("POST", path, owner, params={"wait": round(wait, 3)})
        return parse_answer(DeliveryNext, answer, "conversation service's")
