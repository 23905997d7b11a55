"""One Realtime connection: client events in, server events out, in OpenAI's shape.

The session holds the settings and dispatches client events to its three parts: the input audio
buffer (``InputAudio``: a live session in the core), the conversation (``Conversation``: items,
truncation, deletion) and the response in flight (``ResponseRun``: the voice loop's reply). It holds the
protocol's bookkeeping and nothing else: no speech logic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import ValidationError

from gateway.deps import Gateway
from gateway.realtime.config import SessionConfig, SessionKind
from gateway.realtime.conversation import Conversation
from gateway.realtime.input_audio import InputAudio, OpenLive
from gateway.realtime.protocol import (
    CLIENT_EVENTS,
    UNSUPPORTED_EVENTS,
    AppendEvent,
    ClearEvent,
    CommitEvent,
    ItemCreateEvent,
    ItemDeleteEvent,
    ItemRetrieveEvent,
    ItemTruncateEvent,
    RealtimeError,
    ResponseCancelEvent,
    ResponseCreateEvent,
    SessionUpdateEvent,
    client_event,
    error_event,
    new_id,
    validation_error,
)
from gateway.realtime.replier import OPTION_PARAMS, responder_options
from gateway.realtime.responses import ResponseRun
from gateway.realtime.tools import response_tools
from voicestack_common.errors import VoicestackError
from voicestack_common.jsonbody import parse_json

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class RealtimeSession:
    """The protocol state of one connection."""

    def __init__(
        self,
        send: Send,
        gateway: Gateway,
        caller: str,
        config: SessionConfig,
        open_live: OpenLive,
        replier: Any,
    ) -> None:
        self._send = send
        self.gateway = gateway
        self.caller = caller
        self.config = config
        self.open_live = open_live
        self.replier = replier
        self.audio = InputAudio(self)
        self.conversation = Conversation(self)
        self.response: ResponseRun | None = None

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event with its own ``event_id``."""
        await self._send({"event_id": new_id("event"), **event})

    async def start(self) -> None:
        """``session.created``, for transcription sessions too (the SDK's beta event union has no
        ``transcription_session.created``; see docs/realtime.md)."""
        await self.send({"type": "session.created", "session": self.config.view()})

    async def rate_limits(self) -> None:
        """``rate_limits.updated``: the caller's response allowance (none listed without a limit)."""
        limiter = self.gateway.limits["synthesize"]
        entries = []
        if limiter.enabled:
            remaining, reset = limiter.remaining(self.caller)
            entries.append(
                {"name": "requests", "limit": limiter.burst, "remaining": remaining, "reset_seconds": round(reset, 3)}
            )
        await self.send({"type": "rate_limits.updated", "rate_limits": entries})

    async def close(self) -> None:
        """Stop the response and the live session."""
        if self.response is not None:
            await self.response.cancel("client_cancelled")
        await self.conversation.close()
        await self.audio.close()

    # -- client events ---------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        """One client event; anything wrong becomes an ``error`` event."""
        event_id: str | None = None
        try:
            data = parse_json(text, "message")
        except VoicestackError as exc:  # the shared JSON policy: syntax, encoding, nesting depth
            await self.send(error_event(RealtimeError(exc.message, code=exc.code), None))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            await self.send(error_event(RealtimeError("An event is a JSON object with a 'type'.", param="type"), None))
            return
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        kind = data["type"]
        try:
            if kind in UNSUPPORTED_EVENTS:
                raise RealtimeError(
                    f"'{kind}' is not supported by this server.", code="unsupported_event", param="type"
                )
            if kind not in CLIENT_EVENTS:
                raise RealtimeError(f"Invalid value: '{kind}'. Unknown event type.", code="invalid_value", param="type")
            try:
                event = client_event.validate_python(data)
            except ValidationError as exc:
                problems = [{**p, "loc": p["loc"][1:] if p["loc"][:1] == (kind,) else p["loc"]} for p in exc.errors()]
                raise validation_error(problems) from None
            await self._dispatch(event)
        except RealtimeError as exc:
            await self.send(error_event(exc, event_id))
        except VoicestackError as exc:
            await self.send(error_event(RealtimeError(exc.message, code=exc.code, kind=_kind(exc)), event_id))

    async def _dispatch(self, event: Any) -> None:
        if isinstance(event, SessionUpdateEvent):
            await self._session_update(event)
        elif isinstance(event, AppendEvent):
            await self.audio.append(event)
        elif isinstance(event, CommitEvent):
            await self.audio.commit(event)
        elif isinstance(event, ClearEvent):
            await self.audio.clear()
        elif isinstance(event, ItemCreateEvent | ItemTruncateEvent | ItemDeleteEvent | ItemRetrieveEvent):
            self._conversation_only(event.type)
            await self.conversation.handle(event)
        elif isinstance(event, ResponseCreateEvent):
            self._conversation_only(event.type)
            await self._response_create(event)
        elif isinstance(event, ResponseCancelEvent):
            self._conversation_only(event.type)
            await self._response_cancel(event)

    def _conversation_only(self, kind: str) -> None:
        if self.config.kind == "transcription_session":
            raise RealtimeError(f"'{kind}' is not available in a transcription session.", param="type")

    async def _session_update(self, event: SessionUpdateEvent) -> None:
        if event.type == "transcription_session.update" and self.config.kind != "transcription_session":
            raise RealtimeError("This is a conversation session: send 'session.update'.", param="type")
        update = event.session
        given = update.model_fields_set
        await self._check_options(
            "session",
            update.instructions if "instructions" in given else None,
            update.temperature if "temperature" in given else None,
            update.max_response_output_tokens if "max_response_output_tokens" in given else None,
        )
        self.config.apply(update)
        shape: SessionKind = "transcription_session" if event.type == "transcription_session.update" else "session"
        await self.send({"type": shape + ".updated", "session": self.config.view(shape)})

    async def _check_options(
        self,
        prefix: str,
        instructions: str | None,
        temperature: float | None,
        max_tokens: int | Literal["inf"] | None,
    ) -> None:
        """Refuse what the conversation service would refuse for a turn (not allowed, out of bounds)."""
        options = responder_options(instructions, temperature, max_tokens)
        if not options or self.replier is None:
            return
        try:
            await self.replier.check(options)
        except VoicestackError as exc:
            if exc.status_code >= 500:
                raise
            option = exc.details.get("option") if isinstance(exc.details, dict) else None
            param = f"{prefix}.{OPTION_PARAMS[option]}" if option in OPTION_PARAMS else None
            raise RealtimeError(exc.message, code=exc.code, param=param) from None

    async def _response_create(self, event: ResponseCreateEvent) -> None:
        if self.response is not None:
            raise RealtimeError(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
            )
        if (options := event.response) is not None:
            response_tools(options, self.config.tools, self.config.tool_choice)
            await self._check_options(
                "response", options.instructions, options.temperature, options.max_response_output_tokens
            )
        await self.start_response(event.response, event.event_id)

    async def start_response(self, options: Any, event_id: str | None = None) -> None:
        """A response, unless one is in flight; it waits for the transcripts of the items it answers."""
        if self.response is not None:
            return
        self.gateway.charge("synthesize", self.caller)
        await self.conversation.settle()
        pending = [*self.audio.pending(), *self.conversation.pending()]
        items = self.conversation.items
        waits: list[Awaitable[Any]] = [u.done.wait() for u in pending if u.item_id in items]
        run = ResponseRun(self, options, waits, event_id)
        self.response = run
        run.task.add_done_callback(lambda _: self._response_done(run))

    def _response_done(self, run: ResponseRun) -> None:
        if self.response is run:
            self.response = None

    async def _response_cancel(self, event: ResponseCancelEvent) -> None:
        run = self.response
        if run is None or (event.response_id is not None and event.response_id != run.id):
            raise RealtimeError("There is no active response to cancel.", code="response_cancel_not_active")
        await run.cancel("client_cancelled")


def _kind(exc: VoicestackError) -> str:
    status = getattr(exc, "status_code", 500)
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"
