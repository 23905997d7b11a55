"""The one JSON body policy (voicestack_common.jsonbody), as every service must answer it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

DEEP = b'{"text": ' + b"[" * 1500 + b"]" * 1500 + b"}"
SHALLOW_BRACKETS_IN_A_STRING = json.dumps({"text": "[" * 500}).encode()

# (what, body, content type, status, code); ``None`` for the code the service gives a wrongly shaped body.
REFUSED: list[tuple[str, bytes, str, int, str | None]] = [
    ("empty", b"", "application/json", 400, "empty_body"),
    ("blank", b"  \n", "application/json", 400, "empty_body"),
    ("not JSON", b'{"text": ', "application/json", 400, "invalid_json"),
    ("NaN", b'{"text": "a", "speed": NaN}', "application/json", 400, "invalid_json"),
    ("not UTF-8", '{"text": "Café"}'.encode("latin-1"), "application/json", 415, "invalid_encoding"),
    ("nested too deep", DEEP, "application/json", 400, "json_too_deep"),
    ("deep, without a type", b"[" * 3000, "", 400, "json_too_deep"),
    ("a form", b"text=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("XML", b"<text>hi</text>", "application/xml", 415, "unsupported_media_type"),
    ("an array for an object", b'["hi"]', "application/json", 422, None),
]


class Post(Protocol):
    def __call__(self, content: bytes, headers: dict[str, str]) -> Any: ...


def check_refusals(post: Post, shape_code: str) -> None:
    """Every refusal in the table, with its status and code."""
    for what, body, content_type, status, code in REFUSED:
        response = post(body, {"content-type": content_type} if content_type else {})
        assert response.status_code == status, f"{what}: {response.text}"
        assert response.json()["error"]["code"] == (code or shape_code), what
        assert response.json()["error"]["message"], what


def check_accepted(post: Post, good: Callable[[], dict[str, Any]], ok: int) -> None:
    """A good body is read as JSON without a type, as text/plain (``fetch``), +json, and with a BOM."""
    for content_type, prefix in [
        (None, b""),
        ("text/plain;charset=UTF-8", b""),
        ("application/vnd.api+json", b""),
        ("application/json", b"\xef\xbb\xbf"),
    ]:
        body = prefix + json.dumps(good()).encode()
        response = post(body, {"content-type": content_type} if content_type else {})
        assert response.status_code == ok, f"{content_type} {prefix!r}: {response.text}"
