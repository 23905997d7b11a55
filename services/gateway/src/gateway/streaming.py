"""Relaying a broker's streamed answer chunk by chunk, with taps that see what went through."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
from starlette.background import BackgroundTask

from voicestack_common.streaming import CutOffStreamingResponse, StreamCutOff

logger = logging.getLogger(__name__)

_PASSED_HEADERS = ("content-type", "content-disposition", "cache-control")
# Kokoro's rate, for raw PCM streams (they carry no header to read it from).
PCM_SAMPLE_RATE = 24_000
_WAV_HEADER = 44


class Tap(Protocol):
    """Sees every chunk relayed, then learns that the stream completed."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...


class AudioTap:
    """Measures streamed WAV or PCM16 audio; calls ``done(seconds)`` once it completed."""

    def __init__(self, media_type: str, done: Callable[[float], None]) -> None:
        self.wav = "wav" in media_type
        self.measurable = self.wav or "pcm" in media_type
        self.done = done
        self.head = b""
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        """Count bytes; keep the WAV header."""
        self.size += len(chunk)
        if len(self.head) < _WAV_HEADER:
            self.head += chunk[: _WAV_HEADER - len(self.head)]

    def finish(self) -> None:
        """Seconds of 16-bit mono audio (0 for compressed formats, whose length is not known here)."""
        seconds = 0.0
        if self.measurable:
            rate, data = PCM_SAMPLE_RATE, self.size
            if self.wav and len(self.head) == _WAV_HEADER and self.head[:4] == b"RIFF":
                rate, data = struct.unpack("<I", self.head[24:28])[0] or PCM_SAMPLE_RATE, self.size - _WAV_HEADER
            seconds = max(0, data) / 2 / rate
        self.done(seconds)


class SseTap:
    """Parses relayed server-sent events; calls ``done(events by type)`` once the stream completed."""

    def __init__(self, done: Callable[[dict[str, dict[str, Any]]], None]) -> None:
        self.done = done
        self.buffer = b""
        self.events: dict[str, dict[str, Any]] = {}

    def feed(self, chunk: bytes) -> None:
        """Keep the last event of each type (audio deltas are not kept)."""
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data:") or b'"speech.audio.delta"' in line:
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                self.events[event["type"]] = event

    def finish(self) -> None:
        """Hand over what was seen."""
        self.done(self.events)


def relay(upstream: httpx.Response, tap: Tap | None = None) -> CutOffStreamingResponse:
    """The broker's response as ours, each chunk passed on as it arrives; the broker's
    response is closed however the client's ends (done, disconnected, failed)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                if tap is not None:
                    tap.feed(chunk)
                yield chunk
        except httpx.HTTPError as exc:
            logger.warning("the broker's stream broke off: %s", type(exc).__name__)
            raise StreamCutOff(str(exc)) from None
        finally:
            await upstream.aclose()
        if tap is not None:
            try:
                tap.finish()
            except Exception:  # an event is a side effect: it must not break a delivered response
                logger.exception("stream tap failed")

    headers = {name: upstream.headers[name] for name in _PASSED_HEADERS if name in upstream.headers}
    headers["X-Accel-Buffering"] = "no"  # proxies in front of us must not buffer the stream either
    return CutOffStreamingResponse(
        body(), status_code=upstream.status_code, headers=headers, background=BackgroundTask(upstream.aclose)
    )
