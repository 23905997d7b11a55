"""Calling a peer: its error answers and httpx's transport failures become the domain's errors.

a peer's {"error": {"code", "message", "details"}}   → the same code, message and details,
                                                       with the peer's status (its 500 is our 502)
any other error answer                              → upstream_rejected (4xx) / upstream_error (5xx)
httpx timeout                                       → UpstreamTimeout (504)
httpx connection failure                            → UpstreamError upstream_unavailable (502)
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from voicestack_common.errors import ClientError, UpstreamError, UpstreamTimeout, VoicestackError

# Error bodies are small JSON; anything longer is cut before it reaches a log or a client.
MAX_ERROR_BODY = 64 * 1024

# Keep-alive between the services: every server keeps an idle connection open SERVER_KEEP_ALIVE seconds,
# every pooled client drops its own after POOL_KEEP_ALIVE. With the two equal, a client could send on a
# connection in the very instant the server closes it, and the request would read as dropped. 4 s is
# also under uvicorn's own default of 5 s, for a peer started without these settings.
SERVER_KEEP_ALIVE = 15
POOL_KEEP_ALIVE = 4.0


def error_parts(body: bytes, status: int) -> tuple[str, str, Any]:
    """(code, message, details) of a peer's error answer; generic ones for a body in another shape."""
    try:
        error = json.loads(body[:MAX_ERROR_BODY])["error"]
        return str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError, RecursionError):
        text = body[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()[:300] or f"HTTP {status}"
        return ("upstream_error" if status >= 500 else "upstream_rejected"), text, None


@functools.cache
def _status_error(status: int) -> type[VoicestackError]:
    """An error class that answers with a peer's own status."""
    base: type[VoicestackError] = ClientError if status < 500 else UpstreamError
    return type(f"UpstreamStatus{status}", (base,), {"status_code": status})


def answered_error(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> VoicestackError:
    """A peer's error answer as ours: its status (a 500 becomes 502), code, message, details, Retry-After."""
    code, message, details = error_parts(body, status)
    retry = {"Retry-After": headers["Retry-After"]} if headers and "Retry-After" in headers else None
    return _status_error(502 if status == 500 else status)(message, code=code, details=details, headers=retry)


@contextlib.contextmanager
def upstream_errors(
    what: str, *, unreachable_code: str = "upstream_unavailable", timeout_code: str = "upstream_timeout"
) -> Iterator[None]:
    """Inside the block, an httpx timeout is ``UpstreamTimeout`` and any other httpx failure ``UpstreamError``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{what} timed out", code=timeout_code) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{what} failed: {type(exc).__name__}: {exc}", code=unreachable_code) from exc


class RemoteServer:
    """A remote engine server: one pooled client, opened by ``open``, with upstream errors on failure."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        connect_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = f"{name} at {self.url}"
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._transport = transport
        self._client: httpx.Client | None = None

    def open(self) -> None:
        """Open the connection pool (nothing is sent: readiness probes the server)."""
        self._client = httpx.Client(base_url=self.url, timeout=self._timeout, transport=self._transport)

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; the answer may be any status."""
        with upstream_errors(self.name):
            return self.client.request(method, path, **kwargs)

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed request; failures while reading the body are upstream errors too."""
        with upstream_errors(self.name), self.client.stream(method, path, **kwargs) as response:
            yield response

    def probe(self, path: str) -> bool:
        """Whether ``path`` answers without a server error."""
        try:
            return self.request("GET", path).status_code < 500
        except (UpstreamError, UpstreamTimeout):
            return False

    @property
    def client(self) -> httpx.Client:
        """The open client."""
        if self._client is None:
            raise RuntimeError(f"{self.name}: client not open (engine not loaded)")
        return self._client
