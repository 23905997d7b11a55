"""Strict JSON parsing and readable validation errors, shared by HTTP events and MQTT commands."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from voicestack_common.errors import ClientError, InvalidRequest
from voicestack_common.jsonbody import loads_bounded


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and cannot be re-published as JSON.
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(data: bytes, what: str) -> Any:
    """Parse ``data`` as JSON, or raise ``invalid_json`` (400) naming ``what``."""
    if not data.strip():
        raise ClientError(f"the {what} is empty; send a JSON object", code="invalid_json")
    try:
        return loads_bounded(data, what=what, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(f"the {what} is not valid JSON: {exc}", code="invalid_json") from None


def invalid(exc: ValidationError, *, code: str, what: str) -> InvalidRequest:
    """A 422 whose message names the first wrong field and whose details list them all."""
    problems = [{"loc": [str(part) for part in err["loc"]], "msg": err["msg"]} for err in exc.errors()]
    first = problems[0] if problems else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"]) or what
    return InvalidRequest(f"{where}: {first['msg']}", code=code, details={"errors": problems})
