"""Typed dependencies, and the JSON body check every synthesis route runs first."""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import Synthesizer
from voicestack_common.errors import ClientError, UnsupportedMediaType
from voicestack_common.jsonbody import loads_bounded


def get_synthesizer(request: Request) -> Synthesizer:
    """The lifespan's synthesizer."""
    synthesizer: Synthesizer = request.state.synthesizer
    return synthesizer


def get_settings(request: Request) -> TtsSettings:
    """The settings the app was built with."""
    settings: TtsSettings = request.app.state.settings
    return settings


SynthesizerDep = Annotated[Synthesizer, Depends(get_synthesizer)]
SettingsDep = Annotated[TtsSettings, Depends(get_settings)]


async def check_json_body(request: Request) -> None:
    """A JSON object in UTF-8, or a clear error with a stable code (FastAPI's own is a bare 400)."""
    content_type = request.headers.get("content-type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            raise UnsupportedMediaType(
                f"expected a JSON body (Content-Type: application/json), got {message.get_content_type()}"
            )
    body = await request.body()
    if not body.strip():
        raise ClientError("the request has no body: send a JSON object", code="empty_body")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaType(
            f"the body is not valid UTF-8 (byte {exc.start}); JSON must be sent as UTF-8", code="invalid_encoding"
        ) from None
    try:
        parsed = loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise ClientError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", code="invalid_json"
        ) from None
    if not isinstance(parsed, dict):
        raise ClientError("the body must be a JSON object", code="invalid_json")


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is checked (type, encoding, syntax) before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            await check_json_body(request)
            return await handler(request)

        return checked
