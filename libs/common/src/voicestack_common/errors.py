"""The domain exception tree, its one mapping to JSON HTTP errors and its WebSocket close codes.

                                    HTTP status and code         WebSocket close
    VoicestackError                 500 internal_error           1011
     ├── ClientError                400 bad_request              1008  (the caller's fault)
     │    ├── PayloadTooLarge       413 payload_too_large        1009
     │    ├── UnsupportedMediaType  415 unsupported_media_type   1008
     │    └── InvalidRequest        422 invalid_request          1008
     ├── Saturated                  503 saturated                1013  (+ Retry-After)
     ├── NotReady                   503 not_ready                1013
     ├── UpstreamError              502 upstream_error           1013
     └── UpstreamTimeout            504 upstream_timeout         1013

Engines and helpers raise these (with a more specific ``code`` where one
helps the caller); ``install_error_handlers`` turns them into
``{"error": {"code": ..., "message": ...}}`` once, in each app factory, and
the WebSocket edge (``voicestack_common.websocket``) closes a socket with an
error's ``close_code``. Nothing below ever sends a stack trace to a client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

logger = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455) every face uses; an error says its own in ``close_code``.
CLOSE_NORMAL = 1000
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


class VoicestackError(Exception):
    """Base of every error a service reports to its caller."""

    status_code: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    close_code: ClassVar[int] = CLOSE_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers or {}


class ClientError(VoicestackError):
    """The request cannot be served as sent."""

    status_code = 400
    default_code = "bad_request"
    close_code = CLOSE_POLICY


class PayloadTooLarge(ClientError):
    """The request body is over the configured limit."""

    status_code = 413
    default_code = "payload_too_large"
    close_code = CLOSE_TOO_BIG


class UnsupportedMediaType(ClientError):
    """The body's type or encoding is not one the endpoint reads."""

    status_code = 415
    default_code = "unsupported_media_type"


class InvalidRequest(ClientError):
    """A field is missing, malformed or out of range."""

    status_code = 422
    default_code = "invalid_request"


class Saturated(VoicestackError):
    """Every worker is busy and the queue is full: try again shortly."""

    status_code = 503
    default_code = "saturated"
    close_code = CLOSE_TRY_AGAIN

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})


class NotReady(VoicestackError):
    """The service is up but cannot serve yet (model loading, dependency down)."""

    status_code = 503
    default_code = "not_ready"
    close_code = CLOSE_TRY_AGAIN


class UpstreamError(VoicestackError):
    """A dependency answered with an error or could not be reached."""

    status_code = 502
    default_code = "upstream_error"
    close_code = CLOSE_TRY_AGAIN


class UpstreamTimeout(VoicestackError):
    """A dependency, or our own engine, did not answer in time."""

    status_code = 504
    default_code = "upstream_timeout"
    close_code = CLOSE_TRY_AGAIN


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON error shape shared by every service."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


# Where FastAPI found a field; a message names the field itself.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def invalid_request(
    errors: Sequence[Mapping[str, Any]], *, code: str = "invalid_request", what: str = "body"
) -> InvalidRequest:
    """Pydantic's (or FastAPI's) validation errors as the one 422: the message names the first
    wrong field, ``details.errors`` lists them all (``what`` names a body without a field)."""
    problems = [{"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in errors]
    first = problems[0] if problems else {"loc": [], "msg": "invalid"}
    loc = first["loc"][1:] if first["loc"][:1] and first["loc"][0] in _SOURCES else first["loc"]
    return InvalidRequest(f"{'.'.join(loc) or what}: {first['msg']}", code=code, details={"errors": problems})


M = TypeVar("M", bound=BaseModel)


def validate_as(model: type[M], data: Any, *, code: str = "invalid_request", what: str = "body") -> M:
    """``data`` as ``model``, or the one 422 (``invalid_request``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc.errors(), code=code, what=what) from None


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _count_error(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "http_metrics", None)
    if metrics is not None:
        metrics.errors.labels(code=code).inc()


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    _count_error(request, code)
    return JSONResponse(
        error_body(code, message, details), status_code=status, headers=dict(headers) if headers else None
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map the exception tree, validation errors and stray exceptions to JSON errors."""

    @app.exception_handler(VoicestackError)
    async def _domain(request: Request, exc: VoicestackError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return _respond(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = invalid_request(exc.errors())
        return _respond(request, error.status_code, error.code, error.message, error.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "http_error")
        return _respond(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The caller left while its body was being read (a gateway giving up, a cancelled batch item):
        # nobody is there to answer, and it is not our fault (no 500, no stack trace in the log).
        logger.info("client left before its request was read: %s %s", request.method, request.url.path)
        _count_error(request, "client_disconnected")
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(request, 500, "internal_error", "internal server error")
