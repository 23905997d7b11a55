"""Streamed answers: server-sent events (written and read here, once), in-band errors, and audio
streams a failure cuts off.

Once the status line is out, an error can no longer change it. A stream of
events reports the error as a last ``{"type": "error", "error": {...}}`` event;
a stream of bytes (audio) is left without its closing chunk, so that HTTP
clients raise rather than play a truncated file as if it were whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from voicestack_common.errors import VoicestackError, error_body

logger = logging.getLogger(__name__)

SSE_MEDIA_TYPE = "text/event-stream"
# Proxies in front of us must not buffer a stream, nor caches keep it.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: Mapping[str, Any], event: str | None = None) -> bytes:
    """One event: its JSON ``data``, named by ``event`` when the stream has several kinds."""
    named = f"event: {event}\n" if event else ""
    return f"{named}data: {json.dumps(payload)}\n\n".encode()


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One received event: its name (``message`` when unnamed) and its data lines joined."""

    event: str
    data: str


class SseDecoder:
    """Reads server-sent events line by line, as the HTML standard does: ``event`` and ``data`` fields,
    ``:`` comments skipped, a blank line ending the event (one with no data is dropped)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def line(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line break); the event it ends, if any."""
        if not line:
            return self.end()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def end(self) -> ServerSentEvent | None:
        """End the event in progress (a blank line, or the stream's end)."""
        found = ServerSentEvent(self._event, "\n".join(self._data)) if self._data else None
        self._event, self._data = "message", []
        return found


async def read_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream's lines (``httpx.Response.aiter_lines()``); a last event the stream
    ended without its blank line is still read."""
    decoder = SseDecoder()
    async for line in lines:
        if (event := decoder.line(line)) is not None:
            yield event
    if (event := decoder.end()) is not None:
        yield event


def error_event(exc: BaseException) -> dict[str, Any]:
    """An in-band ``error`` event for a failure (an unexpected one says no more than "internal")."""
    if isinstance(exc, VoicestackError):
        return {"type": "error", **error_body(exc.code, exc.message, exc.details)}
    return {"type": "error", **error_body("internal_error", "internal server error")}


async def sse_stream(
    events: AsyncIterable[Mapping[str, Any]], *, what: str, on_error: Callable[[str], None] | None = None
) -> AsyncIterator[bytes]:
    """Events as SSE bytes; a failure ends the stream with an ``error`` event (``on_error(code)``)."""
    try:
        async for event in events:
            yield sse_event(event)
    except Exception as exc:  # the status line is gone: report in-band
        payload = error_event(exc)
        code = payload["error"]["code"]
        if not isinstance(exc, VoicestackError):
            logger.exception("streaming %s failed", what)
        if on_error is not None:
            on_error(code)
        yield sse_event(payload)


class StreamCutOff(Exception):
    """Raised by a body iterator to end a ``CutOffStreamingResponse`` without its closing chunk."""


class CutOffStreamingResponse(StreamingResponse):
    """A streamed body that a ``StreamCutOff`` from its iterator leaves unfinished.

    Built on the ASGI interface only: the iterator is wrapped, and the final
    ``more_body: False`` message is held back, so the server closes the
    connection and the client sees a cut-off body.
    """

    def __init__(
        self,
        content: AsyncIterable[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.cut_off = False
        super().__init__(
            self._guarded(content),
            status_code=status_code,
            headers=headers,
            media_type=media_type,
            background=background,
        )

    async def _guarded(self, content: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in content:
                yield chunk
        except StreamCutOff:
            self.cut_off = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_unless_cut_off(message: Message) -> None:
            if self.cut_off and message["type"] == "http.response.body" and not message.get("more_body", False):
                return
            await send(message)

        await super().__call__(scope, receive, send_unless_cut_off)
