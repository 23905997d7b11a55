"""Structured logging with the request id on every line."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Ids we pass on must be safe in a header and a log line.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# uvicorn adds a terminal-coloured copy of its message; the JSON line has the plain one.
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A line for people: time, level, service, logger, message, then the extras as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STD_ATTRS)
        if extras:
            # Tracebacks follow the first line; the extras belong on it.
            head, sep, tail = line.partition("\n")
            line = f"{head} ({extras}){sep}{tail}"
        request_id = request_id_var.get()
        return f"{line} [{request_id}]" if request_id else line


# Health checks and scrapes arrive every few seconds from the gateway, the bridge and
# Prometheus; at INFO they would drown the requests people care about.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# A probe answered "ready" or "not ready (yet)" is routine (a starting service is polled until it is
# ready, and says itself what it waits for); any other status is news.
_ROUTINE_PROBE_STATUSES = frozenset({200, 503})


class ProbeAccessFilter(logging.Filter):
    """Drop uvicorn's access lines for routine probes (kept at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 5 and args[2] in PROBE_PATHS and args[4] in _ROUTINE_PROBE_STATUSES:
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


# Query parameters whose values are secrets: a WebSocket client can only send its key as ``?api_key=``,
# and uvicorn logs every request's full path (access log, and "WebSocket PATH [accepted]").
SECRET_QUERY_PARAMS = ("api_key", "apikey", "access_token", "token", "key", "password", "secret")
_SECRET_QUERY = re.compile(r"([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)[^&#\s\"']*", re.IGNORECASE)
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced."""
    return _SECRET_QUERY.sub(r"\1" + REDACTED, text) if "=" in text else text


class RedactSecretsFilter(logging.Filter):
    """Redacts secret query parameters from every record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecretsFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at INFO ("HTTP Request: GET .../readyz"): the health probes of the
    # gateway and the bridge would print a line per service every few seconds. Kept at DEBUG.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if root.isEnabledFor(logging.DEBUG) else logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.filters[:] = [f for f in access.filters if not isinstance(f, ProbeAccessFilter)]
    access.addFilter(ProbeAccessFilter())


def new_request_id() -> str:
    """A fresh opaque id."""
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Accept a caller's ``X-Request-ID`` (or make one), expose it to logs, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
