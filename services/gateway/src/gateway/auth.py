"""API keys: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (WebSocket: also ``?api_key=KEY``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from voicestack_common.errors import ClientError, error_body

API_KEY_HEADER = "X-API-Key"
API_KEY_QUERY = "api_key"
PROTECTED_PREFIXES = ("/api/voice/", "/v1/", "/api/conversations", "/api/messages/", "/upload", "/audio")
OPEN_PATHS = frozenset({"/api/voice/health"})


class Unauthorized(ClientError):
    """No API key, or one that is not configured."""

    status_code = 401
    default_code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class ApiKeys:
    """The configured keys; checks a presented key in constant time."""

    def __init__(self, keys: list[str]) -> None:
        # Digests are compared, not the keys: equal lengths, so timing tells nothing of the key.
        self._digests = [_digest(key) for key in keys]

    @property
    def enabled(self) -> bool:
        """Whether requests need a key at all."""
        return bool(self._digests)

    def caller(self, presented: str | None, client_host: str | None) -> str:
        """The caller's id for rate limits: its key's, or its address when no keys are configured."""
        return self.principal(presented) if self.enabled else f"ip:{client_host or 'unknown'}"

    def socket_caller(self, websocket: HTTPConnection, key: str | None = None) -> str:
        """A WebSocket's caller (the edge's ``authenticate``): ``key`` if the face found one elsewhere
        (a subprotocol), else the headers' or ``?api_key=``; ``Unauthorized`` closes it with 1008."""
        host = websocket.client.host if websocket.client else None
        return self.caller(key or presented_key(websocket.headers, websocket.query_params), host)

    def principal(self, presented: str | None) -> str:
        """A stable, non-secret id of the caller's key (for rate limits and logs)."""
        if presented is None or not presented:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        digest = _digest(presented)
        matched: bytes | None = None
        for known in self._digests:  # no early exit: every key costs the same
            if hmac.compare_digest(digest, known):
                matched = known
        if matched is None:
            raise Unauthorized("the API key is not valid", code="invalid_api_key")
        return "key:" + matched.hex()[:12]


def presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The key a request carries, from the headers (or the query string, for WebSockets)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if key := headers.get(API_KEY_HEADER.lower(), "").strip():
        return key
    if query is not None and (key := query.get(API_KEY_QUERY, "").strip()):
        return key
    return None


class ApiKeyMiddleware:
    """Authenticates ``/api/voice/*``, ``/v1/*``, ``/api/conversations``, ``/api/messages/*`` and the seed
    flows' ``/upload`` and ``/audio`` before anything else, so an unauthenticated body is
    never read; puts the caller's id in ``request.state.caller``. WebSockets authenticate in their
    handler, where a browser can still be told why."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PROTECTED_PREFIXES) or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        try:
            caller = self.keys.caller(presented_key(Headers(scope=scope)), client[0] if client else None)
        except Unauthorized as exc:
            metrics = getattr(getattr(scope.get("app"), "state", None), "http_metrics", None)
            if metrics is not None:
                metrics.errors.labels(code=exc.code).inc()
            response = JSONResponse(error_body(exc.code, exc.message), status_code=401, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
