"""Parsing untrusted JSON (request bodies, WebSocket messages, MQTT payloads) with a nesting bound.

``json.loads`` recurses once per level: a body of a few thousand ``[`` raises ``RecursionError``,
which no handler expects (a 500, and a WebSocket dropped without a close frame). Every edge parses
through :func:`loads_bounded`, which answers 400 ``invalid_json`` instead and also refuses documents
nested deeper than any of our shapes needs, so nothing downstream (validation, echoing an ``id``,
re-encoding) can hit the interpreter's recursion limit either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from voicestack_common.errors import ClientError

MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays accepted; our deepest request shape uses 3 levels."""


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads_bounded(
    data: str | bytes,
    *,
    what: str = "body",
    max_depth: int = MAX_JSON_DEPTH,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads``, with too-deep nesting refused as 400 ``invalid_json``.

    Syntax errors propagate as ``ValueError`` (callers word them); only nesting is handled here.
    """
    try:
        value = json.loads(data, parse_constant=parse_constant)
    except RecursionError:
        raise ClientError(
            f"the {what} is nested too deeply (at most {max_depth} levels)", code="invalid_json"
        ) from None
    if json_depth(value) > max_depth:
        raise ClientError(f"the {what} is nested too deeply (at most {max_depth} levels)", code="invalid_json")
    return value
