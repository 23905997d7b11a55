"""Relaying a broker's streamed answer chunk by chunk, with taps that see what went through.

A broker's stream that breaks off (the replica died mid-way) ends the way the brokers' own streams
end on a failure: server-sent events with a last in-band ``error`` event (``upstream_unavailable``),
audio bytes cut off without their closing chunk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import httpx
from starlette.background import BackgroundTask

from voicestack_common.contracts.audio import AUDIO_HEADERS, audio_seconds
from voicestack_common.errors import UpstreamError
from voicestack_common.streaming import (
    SSE_MEDIA_TYPE,
    CutOffStreamingResponse,
    ServerSentEvent,
    SseDecoder,
    StreamCutOff,
    error_event,
    sse_event,
)

logger = logging.getLogger(__name__)

_PASSED_HEADERS = ("content-type", "content-disposition", "cache-control", *(h.lower() for h in AUDIO_HEADERS))


class Tap(Protocol):
    """Sees every chunk relayed, then learns that the stream completed."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...


class AudioTap:
    """Counts streamed audio; calls ``done(seconds)`` once it completed, with the seconds the broker's
    headers state or let count (0 for compressed audio, whose length nobody knows while it streams)."""

    def __init__(self, headers: Mapping[str, str], done: Callable[[float], None]) -> None:
        self.headers = headers
        self.done = done
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        """Count bytes."""
        self.size += len(chunk)

    def finish(self) -> None:
        """Hand over the seconds."""
        self.done(audio_seconds(self.headers, self.size) or 0.0)


class SseTap:
    """Reads relayed server-sent events (the shared ``SseDecoder``); calls ``done(events by type)`` once
    the stream completed."""

    def __init__(self, done: Callable[[dict[str, dict[str, Any]]], None]) -> None:
        self.done = done
        self.buffer = b""
        self.decoder = SseDecoder()
        self.events: dict[str, dict[str, Any]] = {}

    def feed(self, chunk: bytes) -> None:
        """Keep the last event of each type (audio deltas are not kept, nor parsed)."""
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._keep(self.decoder.line(line.rstrip(b"\r").decode("utf-8", "replace")))

    def finish(self) -> None:
        """Hand over what was seen (an event the stream ended without its blank line counts)."""
        if self.buffer:
            self._keep(self.decoder.line(self.buffer.rstrip(b"\r").decode("utf-8", "replace")))
        self._keep(self.decoder.end())
        self.done(self.events)

    def _keep(self, sse: ServerSentEvent | None) -> None:
        if sse is None or '"speech.audio.delta"' in sse.data:
            return
        try:
            event = json.loads(sse.data)
        except ValueError:
            return
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            self.events[event["type"]] = event


def passed_headers(upstream: httpx.Response) -> dict[str, str]:
    """The broker's headers a client may see (its type and disposition, and how much audio it holds)."""
    return {name: upstream.headers[name] for name in _PASSED_HEADERS if name in upstream.headers}


def relay(upstream: httpx.Response, tap: Tap | None = None) -> CutOffStreamingResponse:
    """The broker's response as ours, each chunk passed on as it arrives; the broker's
    response is closed however the client's ends (done, disconnected, failed)."""

    events = upstream.headers.get("content-type", "").startswith(SSE_MEDIA_TYPE)

    async def body() -> AsyncIterator[bytes]:
        tail = b"\n\n"  # the end of what went out: an event in progress must be ended first
        try:
            async for chunk in upstream.aiter_raw():
                if tap is not None:
                    tap.feed(chunk)
                if chunk:
                    tail = (tail + chunk)[-2:]
                yield chunk
        except httpx.HTTPError as exc:
            logger.warning("the broker's stream broke off: %s", type(exc).__name__)
            if not events:  # audio: left unfinished, so that clients raise rather than play half a file
                raise StreamCutOff(str(exc)) from None
            # Events: a last in-band ``error`` event, as the brokers' own streams end on a failure.
            lost = UpstreamError("the broker's stream broke off before it ended", code="upstream_unavailable")
            yield (b"" if tail == b"\n\n" else b"\n\n") + sse_event(error_event(lost))
            return
        finally:
            await upstream.aclose()
        if tap is not None:
            try:
                tap.finish()
            except Exception:  # an event is a side effect: it must not break a delivered response
                logger.exception("stream tap failed")

    headers = passed_headers(upstream)
    headers["X-Accel-Buffering"] = "no"  # proxies in front of us must not buffer the stream either
    return CutOffStreamingResponse(
        body(), status_code=upstream.status_code, headers=headers, background=BackgroundTask(upstream.aclose)
    )
