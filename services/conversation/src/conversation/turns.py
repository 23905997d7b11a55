"""One turn: store the user's message, stream the responder's reply under caps, store the reply.

The reply streams to the caller as server-sent events (``voicestack_common.contracts.conversation``)::

    event: turn    data: {"user_message": {...}, "assistant_message_id": "..."}     TurnStarted
    event: delta   data: {"text": "..."}    (as the responder produces it)         TurnDelta
    event: done    data: {"message": {...}, "truncated": false, "reason": null}    TurnDone
    event: error   data: {"error": {"code", "message"}, "user_message_id": "..."}  TurnFailed

A caller that goes away mid-reply (the gateway on barge-in) leaves the reply stored as
``interrupted`` with what was produced; the gateway then says what was heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

import anyio

from conversation.metrics import ConversationMetrics
from conversation.responders.base import RESPONDER_ERRORS, ReplyRequest, Responder
from conversation.settings import ConversationSettings
from conversation.store import Store
from voicestack_common.contracts.conversation import (
    MessageOut,
    TurnDelta,
    TurnDone,
    TurnFailed,
    TurnRequest,
    TurnStarted,
    encode_turn_event,
)
from voicestack_common.errors import VoicestackError
from voicestack_common.schemas import ErrorDetail

logger = logging.getLogger(__name__)


@dataclass
class Turn:
    """A checked turn, ready to stream."""

    store: Store
    settings: ConversationSettings
    metrics: ConversationMetrics
    responder: Responder
    conversation_id: str
    request: TurnRequest

    async def events(self) -> AsyncIterator[bytes]:
        """Store the user message, stream the reply, store the reply: as SSE bytes."""
        settings, request, name = self.settings, self.request, self.responder.name
        history = await self.store.history(self.conversation_id, settings.history_messages)
        user = await self.store.add_message(self.conversation_id, "user", request.text, transcript=request.transcript)
        assistant = await self.store.add_message(
            self.conversation_id, "assistant", "", status="streaming", responder=name, completed_at=None
        )
        yield encode_turn_event(
            TurnStarted(user_message=MessageOut.model_validate(user), assistant_message_id=assistant.id)
        )
        reply = ReplyRequest(
            conversation_id=self.conversation_id,
            text=request.text,
            history=history,
            user_id=request.user_id,
            language=request.language,
            options=dict(request.responder.options),
        )
        parts: list[str] = []
        size = 0
        started = time.perf_counter()
        first = True
        status, reason, failure = "complete", None, None
        try:
            try:
                deadline = time.monotonic() + settings.reply_timeout
                async with aclosing(cast(AsyncGenerator[str, None], self.responder.reply(reply))) as stream:
                    while True:
                        # A deadline per step, not around the loop: the loop yields to the caller in between.
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError
                        try:
                            # In this task, not wait_for's own: a cancelled turn (the caller left) then stops
                            # the responder's generator before aclosing closes it (else "already running").
                            async with asyncio.timeout(left):
                                piece = await anext(stream)
                        except StopAsyncIteration:
                            break
                        if not isinstance(piece, str) or not piece:
                            continue
                        if first:
                            self.metrics.first_token.labels(name).observe(time.perf_counter() - started)
                            first = False
                        piece = piece[: settings.max_reply_chars - size]
                        parts.append(piece)
                        size += len(piece)
                        yield encode_turn_event(TurnDelta(text=piece))
                        if size >= settings.max_reply_chars:
                            status, reason = "truncated", "length_limit"
                            break
            except TimeoutError:
                if parts:
                    status, reason = "truncated", "time_limit"
                else:
                    failure = VoicestackError(
                        f"the responder gave no answer within {settings.reply_timeout:g} s", code="responder_timeout"
                    )
            except RESPONDER_ERRORS as exc:
                failure = exc
            except Exception:
                logger.exception("responder %s failed", name)
                failure = VoicestackError("the responder failed", code="responder_error")
        except (asyncio.CancelledError, GeneratorExit):
            status = "interrupted"
            with anyio.CancelScope(shield=True):
                await self.store.finish_reply(assistant.id, "".join(parts), status=status)
            self.metrics.turns.labels(name, status).inc()
            raise
        text = "".join(parts)
        self.metrics.reply_seconds.labels(name).observe(time.perf_counter() - started)
        self.metrics.reply_characters.labels(name).inc(len(text))
        if failure is not None:
            logger.warning("reply failed: %s: %s", failure.code, failure.message)
            await self.store.finish_reply(assistant.id, text, status="error", error_code=failure.code)
            self.metrics.turns.labels(name, "error").inc()
            error = ErrorDetail(code=failure.code, message=failure.message)
            yield encode_turn_event(TurnFailed(error=error, user_message_id=user.id))
            return
        await self.store.finish_reply(assistant.id, text, status=status)
        self.metrics.turns.labels(name, "ok" if status == "complete" else status).inc()
        done = await self.store.message(assistant.id)
        yield encode_turn_event(
            TurnDone(message=MessageOut.model_validate(done), truncated=status == "truncated", reason=reason)
        )
