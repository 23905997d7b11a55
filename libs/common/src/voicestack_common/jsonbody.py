"""The one JSON body policy of every service (HTTP bodies, WebSocket messages, MQTT payloads).

    Content-Type              none, text/plain (``fetch`` with a string body), application/json, application/*+json
                              anything else                         415 unsupported_media_type
    empty body                                                      400 empty_body
    not UTF-8 (a UTF-8 BOM is fine)                                 415 invalid_encoding
    not JSON (``NaN`` and ``Infinity`` are not JSON)                400 invalid_json
    nested deeper than ``MAX_JSON_DEPTH``                           400 json_too_deep
    JSON of the wrong shape (an array for an object, a bad field)   422 invalid_request (pydantic's, mapped once)

``JsonBodyRoute`` applies it to every route that declares a JSON body, before
FastAPI reads that body; routes that read a body themselves call ``parse_json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from voicestack_common.errors import ClientError, UnsupportedMediaType

# No body any service reads nests deeper than a few levels; a deep one is a mistake or an attack,
# and Python's json (and pydantic, and json.dumps of an error) would recurse on it.
MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_READ_AS_JSON = ("", "text/plain")


def media_type(headers: Mapping[str, str]) -> str:
    """The body's media type, lower-case, without parameters ("" when there is none)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def is_json_media(media: str) -> bool:
    """Whether a body of this media type is read as JSON."""
    return (
        media in _READ_AS_JSON
        or media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    )


def require_json_media(headers: Mapping[str, str]) -> None:
    """415 unless the Content-Type is one a JSON body may have."""
    media = media_type(headers)
    if not is_json_media(media):
        raise UnsupportedMediaType(f"expected a JSON body (Content-Type: application/json), got {media}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(data: bytes) -> bool:
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:  # the common case costs two counts
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", data)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def parse_json(data: bytes | str, what: str = "body") -> Any:
    """``data`` as JSON under the policy above (``what`` names it in messages)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not raw.strip():
        raise ClientError(f"the {what} is empty: send JSON", code="empty_body")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaType(
            f"the {what} is not valid UTF-8 (byte {exc.start}); JSON must be sent as UTF-8", code="invalid_encoding"
        ) from None
    if _too_deep(raw):
        raise ClientError(f"the {what} is nested deeper than {MAX_JSON_DEPTH} levels", code="json_too_deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ClientError(
            f"the {what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", code="invalid_json"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ClientError(f"the {what} is not valid JSON: {exc}", code="invalid_json") from None


async def read_json(request: Request, what: str = "body") -> Any:
    """The request's body under the policy (media type included)."""
    require_json_media(request.headers)
    return parse_json(await request.body(), what)


class JsonBodyRoute(APIRoute):
    """A route whose declared JSON body passes the policy before FastAPI parses it.

    A body without a Content-Type, or labelled ``text/plain``, is then handed to
    FastAPI as ``application/json``. Routes without a JSON body are untouched.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the policy."""
        handler = super().get_route_handler()
        field = self.body_field
        if field is None or isinstance(field.field_info, Form):
            return handler

        async def checked(request: Request) -> Response:
            await read_json(request)
            if media_type(request.headers) in _READ_AS_JSON:
                headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                body = await request.body()
                request = Request({**request.scope, "headers": headers}, _replay(body, request.receive))
            return await handler(request)

        return checked


def _replay(body: bytes, receive: Receive) -> Receive:
    """An ASGI ``receive`` that hands over a body already read, then listens to the client again."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
