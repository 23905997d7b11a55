"""One turn: store the user's message, stream the responder's reply under caps, store the reply.

The reply streams to the caller as server-sent events (``voicestack_common.contracts.conversation``)::

    event: turn    data: {"user_message": {...}, "assistant_message_id": "..."}     TurnStarted
    event: delta   data: {"text": "..."}    (as the responder produces it)         TurnDelta
    event: tool_call    data: {"call": {...}}  (the model called a tool)           TurnToolCall
    event: tool_result  data: {"call": {...}, "replayed": false, "seconds": 0.2}   TurnToolResult
    event: done    data: {"message": {...}, "truncated": false, "reason": null}    TurnDone
    event: error   data: {"error": {"code", "message"}, "user_message_id": "..."}  TurnFailed

A caller that goes away mid-reply (the gateway on barge-in) leaves the reply stored as
``interrupted`` with what was produced; the gateway then says what was heard.

Tools: the responder gets the service's tools (``conversation.tools``) and the caller's; when the
model calls one of the service's, the call is stored, run (with its timeout), its result stored and
given back to the model, which goes on writing, for up to ``tool_max_rounds`` rounds. A call to a
caller's tool is stored ``pending`` and ends the reply: the caller runs it and sends the output in
its next turn. A call id the conversation has seen is not run again (its stored result is used).
When a tool failed and the model then says nothing, the reply says so itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast

import anyio

from conversation.metrics import ConversationMetrics
from conversation.models import ToolCall
from conversation.responders.base import RESPONDER_ERRORS, ReplyRequest, Responder, ToolCallRequest
from conversation.settings import ConversationSettings
from conversation.store import HistoryItem, Store, ToolUse
from conversation.tools import Outcome, Toolbox, call_key
from voicestack_common.contracts.conversation import (
    MessageOut,
    ToolCallOut,
    TurnDelta,
    TurnDone,
    TurnFailed,
    TurnRequest,
    TurnStarted,
    TurnToolCall,
    TurnToolResult,
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
    toolbox: Toolbox | None = None
    """The service's own tools (its tools file)."""

    def __post_init__(self) -> None:
        self._running: ToolCall | None = None
        """The service's tool call now running (a cancelled turn stores it cancelled)."""
        self._parts: list[str] = []
        """The reply's text so far."""
        self._size = 0
        self._status: str = "complete"
        self._reason: str | None = None
        """Why a truncated reply stopped."""
        self._started = time.perf_counter()
        self._first = True

    def tools(self) -> tuple[list[dict[str, Any]], Any]:
        """The tools offered to the model, OpenAI's form, and the ``tool_choice``."""
        request = self.request
        if request.tool_choice == "none":
            return [], "none"
        specs = self.toolbox.specs() if self.toolbox else []
        specs += [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
        choice: Any = request.tool_choice
        if choice not in ("auto", "required"):
            choice = {"type": "function", "function": {"name": choice}}
        return specs, choice

    async def events(self) -> AsyncIterator[bytes]:
        """Store the user message, stream the reply (running the tools it calls), store the reply: as SSE."""
        settings, request, name = self.settings, self.request, self.responder.name
        history = await self.store.history(self.conversation_id, settings.history_messages)
        user = None
        if request.text is not None:
            user = await self.store.add_message(
                self.conversation_id, "user", request.text, transcript=request.transcript
            )
        assistant = await self.store.add_message(
            self.conversation_id, "assistant", "", status="streaming", responder=name, completed_at=None
        )
        yield encode_turn_event(
            TurnStarted(
                user_message=MessageOut.model_validate(user) if user is not None else None,
                assistant_message_id=assistant.id,
            )
        )
        failure = None
        try:
            try:
                async with aclosing(self._reply(history, assistant.id)) as events:
                    async for event in events:
                        yield event
            except TimeoutError:
                if self._parts:
                    self._status, self._reason = "truncated", "time_limit"
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
            with anyio.CancelScope(shield=True):
                if self._running is not None:
                    await self._finish_cancelled(self._running)
                await self.store.finish_reply(assistant.id, "".join(self._parts), status="interrupted")
            self.metrics.turns.labels(name, "interrupted").inc()
            raise
        text = "".join(self._parts)
        self.metrics.reply_seconds.labels(name).observe(time.perf_counter() - self._started)
        self.metrics.reply_characters.labels(name).inc(len(text))
        if failure is not None:
            logger.warning("reply failed: %s: %s", failure.code, failure.message)
            await self.store.finish_reply(assistant.id, text, status="error", error_code=failure.code)
            self.metrics.turns.labels(name, "error").inc()
            error = ErrorDetail(code=failure.code, message=failure.message)
            yield encode_turn_event(TurnFailed(error=error, user_message_id=user.id if user is not None else None))
            return
        status = self._status
        await self.store.finish_reply(assistant.id, text, status=status)
        self.metrics.turns.labels(name, "ok" if status == "complete" else status).inc()
        done = await self.store.message(assistant.id)
        yield encode_turn_event(
            TurnDone(message=MessageOut.model_validate(done), truncated=status == "truncated", reason=self._reason)
        )

    async def _reply(self, history: list[HistoryItem], message_id: str) -> AsyncGenerator[bytes, None]:
        """The responder's rounds: its text, then the tools it called and their results, until it answers
        without calling any (or calls a client tool, or the rounds run out)."""
        settings, request = self.settings, self.request
        tools, choice = self.tools()
        client_tools = {tool.name for tool in request.tools}
        steps: list[HistoryItem] = []
        failed: list[Outcome] = []
        said = 0
        for round_number in range(settings.tool_max_rounds + 1):
            last = round_number == settings.tool_max_rounds
            reply = ReplyRequest(
                conversation_id=self.conversation_id,
                text=request.text or "",
                history=history,
                user_id=request.user_id,
                language=request.language,
                options=dict(request.responder.options),
                tools=[] if last else tools,
                tool_choice="none" if last or not tools else choice,
                steps=steps,
            )
            calls: list[ToolCallRequest] = []
            said = len(self._parts)
            async with aclosing(self._round(reply)) as items:
                async for item in items:
                    if isinstance(item, ToolCallRequest):
                        calls.append(item)
                    else:
                        yield item
            if self._status != "complete" or not calls or last:
                break
            uses: list[ToolUse] = []
            waiting = False
            for call in calls:
                if call.name in client_tools:
                    waiting = True
                    yield await self._pending(call, message_id)
                    continue
                async with aclosing(self._call(call, message_id)) as events:
                    async for event in events:
                        if isinstance(event, Outcome):
                            uses.append(
                                ToolUse(call.call_id, call.name, call.arguments, event.result, event.status == "ok")
                            )
                            if event.status != "ok":
                                failed.append(event)
                        else:
                            yield event
            if waiting:
                break  # the caller runs its tools and answers in its next turn
            steps.append(HistoryItem("assistant", "".join(self._parts[said:]), tuple(uses)))
        if failed and self._status == "complete" and not "".join(self._parts[said:]).strip():
            yield self._say(f"Sorry, I could not do that: {failed[-1].result}.")

    async def _round(self, reply: ReplyRequest) -> AsyncGenerator[bytes | ToolCallRequest, None]:
        """One responder call: its text as ``delta`` events (capped), then the tools it called."""
        deadline = time.monotonic() + self.settings.reply_timeout
        async with aclosing(cast(AsyncGenerator[str | ToolCallRequest, None], self.responder.reply(reply))) as stream:
            while True:
                # A deadline per step, not around the loop: the loop yields to the caller in between.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                try:
                    # In this task, not wait_for's own: a cancelled turn (the caller left) then stops the
                    # responder's generator before aclosing closes it (else "already running").
                    async with asyncio.timeout(left):
                        piece = await anext(stream)
                except StopAsyncIteration:
                    return
                if isinstance(piece, ToolCallRequest):
                    yield piece
                elif isinstance(piece, str) and piece:
                    if self._first:
                        self.metrics.first_token.labels(self.responder.name).observe(
                            time.perf_counter() - self._started
                        )
                        self._first = False
                    yield self._say(piece)
                    if self._size >= self.settings.max_reply_chars:
                        self._status, self._reason = "truncated", "length_limit"
                        return

    def _say(self, text: str) -> bytes:
        """Add to the reply's text (cut at the cap): its ``delta`` event."""
        text = text[: self.settings.max_reply_chars - self._size]
        self._parts.append(text)
        self._size += len(text)
        return encode_turn_event(TurnDelta(text=text))

    async def _begin(self, call: ToolCallRequest, message_id: str, kind: str) -> tuple[ToolCall, bool]:
        """Store the call before anything runs: its row, and whether the conversation had it already."""
        return await self.store.begin_tool_call(
            self.conversation_id, message_id, call_id=call.call_id, name=call.name, arguments=call.arguments, kind=kind
        )

    async def _pending(self, call: ToolCallRequest, message_id: str) -> bytes:
        """A call of one of the caller's tools: stored pending, for the caller to run."""
        row, _ = await self._begin(call, message_id, "client")
        return encode_turn_event(TurnToolCall(call=ToolCallOut.model_validate(row)))

    async def _call(self, call: ToolCallRequest, message_id: str) -> AsyncGenerator[bytes | Outcome, None]:
        """Run one of the service's tools: its ``tool_call`` and ``tool_result`` events, then its outcome. A call
        id the conversation has seen is not run again: its stored result stands."""
        row, replayed = await self._begin(call, message_id, "server")
        if replayed:
            outcome = Outcome(row.status, row.result or "", row.error_code)
        else:
            yield encode_turn_event(TurnToolCall(call=ToolCallOut.model_validate(row)))
            outcome = await self._run(row)
            row = await self.store.finish_tool_call(
                row.id, status=outcome.status, result=outcome.result, error_code=outcome.error_code
            )
        yield encode_turn_event(
            TurnToolResult(call=ToolCallOut.model_validate(row), replayed=replayed, seconds=outcome.seconds)
        )
        yield outcome

    async def _run(self, row: ToolCall) -> Outcome:
        """Run one of the service's tools (a barge-in cancels it here: ``_finish_cancelled``)."""
        if self.toolbox is None:
            return Outcome("refused", f"there is no tool named {row.name!r}", "tool_unknown")
        self._running = row  # until it ends: a cancelled turn finds it here
        outcome = await self.toolbox.run(row.name, row.arguments, call_key(self.conversation_id, row.call_id))
        self._running = None
        tool = row.name if row.name in self.toolbox.tools else "(unknown)"  # names the model made up: one label
        self.metrics.tool_calls.labels(tool, outcome.status).inc()
        self.metrics.tool_seconds.labels(tool).observe(outcome.seconds)
        if outcome.status != "ok":
            logger.info("tool %s: %s (%s)", row.name, outcome.status, outcome.error_code)
        return outcome

    async def _finish_cancelled(self, row: ToolCall) -> None:
        self.metrics.tool_calls.labels(row.name, "cancelled").inc()
        self._running = None
        try:
            await self.store.finish_tool_call(row.id, status="cancelled", result=None, error_code="cancelled")
        except Exception:
            logger.exception("could not store the cancelled tool call")
