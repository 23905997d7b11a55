"""Calling a remote engine server: transport failures become the domain's upstream errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from voicestack_common.errors import UpstreamError, UpstreamTimeout


@contextlib.contextmanager
def upstream_errors(what: str) -> Iterator[None]:
    """Inside the block, a timeout is ``UpstreamTimeout`` and a dead connection ``upstream_unavailable``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise UpstreamError(f"{what} is unreachable: {exc}", code="upstream_unavailable") from exc


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
