"""Host-header checking with the shared JSON error shape (Starlette's answers in plain text)."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from voicestack_common.errors import error_body


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (without its port) matches an entry: exact, ``*.domain``, or ``*``."""
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class TrustedHostMiddleware:
    """400 ``invalid_host`` for a ``Host`` header not in the list (a WebSocket is refused)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = [host.lower() for host in allowed_hosts] or ["*"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid host"})
            return
        metrics = getattr(getattr(scope.get("app"), "state", None), "http_metrics", None)
        if metrics is not None:
            metrics.errors.labels(code="invalid_host").inc()
        response = JSONResponse(error_body("invalid_host", f"host {host!r} is not served here"), status_code=400)
        await response(scope, receive, send)
