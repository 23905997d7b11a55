"""Host-header and WebSocket ``Origin`` checking, with the shared JSON error shape.

Without them any web page could drive a local stack: a page cannot read a cross-origin answer, but
it can open a WebSocket to ``localhost`` (browsers send its ``Origin`` and let the server decide),
and through DNS rebinding it can even call the REST API under a name of its own (which arrives as
the ``Host``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from voicestack_common.errors import CLOSE_POLICY, error_body
from voicestack_common.logging import PROBE_PATHS


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` (without its port) matches an entry: exact, ``*.domain``, or ``*``."""
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def origin_allowed(origin: str, allowed: list[str], host_header: str) -> bool:
    """Whether a WebSocket's ``Origin`` may connect: listed in the CORS origins (or ``*``), or the
    gateway's own origin (a page it served: the origin's host and port are the ``Host``)."""
    origin = origin.strip().lower().rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc == host_header


class TrustedHostMiddleware:
    """400 ``invalid_host`` for a ``Host`` header not in the list; a WebSocket whose ``Origin`` is
    neither in the CORS origins nor the gateway's own is refused (403 at the handshake)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], allowed_origins: list[str] | None = None) -> None:
        self.app = app
        self.allowed = [host.lower() for host in allowed_hosts] or ["*"]
        self.origins = [origin.strip().lower().rstrip("/") for origin in allowed_origins or []]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"host", b"").decode("latin-1").lower()
        origin = headers.get(b"origin")
        if (
            scope["type"] == "websocket"
            and origin is not None
            and not origin_allowed(origin.decode("latin-1"), self.origins, raw)
        ):
            self._count(scope, "invalid_origin")
            await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": "origin not allowed"})
            return
        host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
        # Probes and scrapes come by address (a pod IP, a container name), not by a public name.
        if "*" in self.allowed or scope.get("path") in PROBE_PATHS or host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            self._count(scope, "invalid_host")
            await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": "invalid host"})
            return
        self._count(scope, "invalid_host")
        response = JSONResponse(error_body("invalid_host", f"host {host!r} is not served here"), status_code=400)
        await response(scope, receive, send)

    @staticmethod
    def _count(scope: Scope, code: str) -> None:
        metrics = getattr(getattr(scope.get("app"), "state", None), "http_metrics", None)
        if metrics is not None:
            metrics.errors.labels(code=code).inc()
