"""Driving ``/v1/realtime`` with the official ``openai`` SDK, every server event checked against its types."""

from __future__ import annotations

import asyncio
import base64
import json
import typing
from collections.abc import Iterator
from typing import Any

import numpy as np
from openai import AsyncOpenAI
from openai.types.beta.realtime import RealtimeServerEvent, TranscriptionSession
from pydantic import BaseModel

from voicestack_common.audio import Pcm, resample

# Every server event type the SDK knows, by its ``type``.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(RealtimeServerEvent)[0])
}


def _no_extras(value: Any, path: str) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{path}: fields the SDK does not know: {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            _no_extras(element, f"{path}[{index}]")


def check_event(raw: str | bytes) -> dict[str, Any]:
    """Validate one server event against the SDK's model for its type; unknown fields fail too."""
    data = json.loads(raw)
    model = EVENT_TYPES.get(data["type"])
    assert model is not None, f"the SDK has no server event {data['type']!r}"
    if data["type"] == "transcription_session.updated":
        # The SDK reuses the REST session type, whose ephemeral key the API documents as absent over WebSocket.
        session = TranscriptionSession.model_validate(
            {**data["session"], "client_secret": {"value": "", "expires_at": 0}}
        )
        _no_extras(session, "session")
        data = {**data, "session": {**data["session"], "client_secret": {"value": "", "expires_at": 0}}}
    event = model.model_validate(data)
    _no_extras(event, data["type"])
    assert data["event_id"].startswith("event_")
    return typing.cast(dict[str, Any], json.loads(raw))


def client(gateway_url: str, api_key: str = "unused") -> AsyncOpenAI:
    """The SDK pointed at the gateway."""
    return AsyncOpenAI(
        api_key=api_key,
        base_url=gateway_url + "/v1",
        websocket_base_url=gateway_url.replace("http", "ws", 1) + "/v1",
        max_retries=0,
    )


async def until(
    connection: Any, *types: str, timeout: float = 90.0, into: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Events (checked) up to and including the first of ``types``."""
    events: list[dict[str, Any]] = [] if into is None else into
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = check_event(await connection.recv_bytes())
                events.append(event)
                if event["type"] in types:
                    return events
    except TimeoutError:
        raise AssertionError(f"no {types} in time; got {[_brief(e) for e in events]}") from None


def _brief(event: dict[str, Any]) -> Any:
    return event if event["type"] == "error" else event["type"]


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one type."""
    return [e for e in events if e["type"] == kind]


def with_silence(pcm: Pcm, lead: float = 0.5, tail: float = 1.5, rate: int = 24_000) -> Pcm:
    """Speech with silence around it, at ``rate``."""
    audio = resample(pcm, rate)
    zeros = np.zeros
    return Pcm(
        np.concatenate([zeros(int(lead * rate), np.float32), audio.samples, zeros(int(tail * rate), np.float32)]),
        rate,
    )


async def stream(connection: Any, data: bytes, size: int, seconds: float) -> None:
    """Append ``data`` in chunks of ``size`` bytes, one every ``seconds`` (real time: the chunk's length)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, piece in enumerate(chunks(data, size)):
        await connection.input_audio_buffer.append(audio=piece)
        delay = started + (index + 1) * seconds - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def chunks(data: bytes, size: int) -> Iterator[str]:
    """Base64 chunks of ``size`` bytes, as ``input_audio_buffer.append`` takes them."""
    for start in range(0, len(data), size):
        yield base64.b64encode(data[start : start + size]).decode()


async def spoken_turn(realtime_url: str, api_key: str, session: dict[str, Any], audio: bytes) -> list[dict[str, Any]]:
    """Open a Realtime session, configure it, stream ``audio`` (PCM16, 100 ms chunks) and collect every event
    up to the reply's ``response.done``."""
    async with client(realtime_url, api_key).beta.realtime.connect(model="voicestack") as connection:
        events = await until(connection, "session.created")
        await connection.session.update(session=session)  # type: ignore[arg-type]
        await until(connection, "session.updated", into=events)
        await stream(connection, audio, 4800, 0.1)
        return await until(connection, "response.done", into=events, timeout=180)
