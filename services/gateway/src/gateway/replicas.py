"""A broker behind a set of replicas: round-robin over the healthy ones, mark-down, one retry.

    body over the broker's limit        → 413 here, nothing sent (a broker refusing a body mid-upload
                                          resets the connection, which would read as a dead replica)
    connect refused / connect timeout   → replica marked down, request tried on the next one
    timeout, connection dropped         → replica probed at once (busy or dead is the probe's call, not
                                          this request's); retried only when the request is idempotent;
                                          the timeout bounds the whole answer (a stream's head), so a
                                          broker trickling bytes cannot hold a caller past it
    connection dropped, first time      → an idempotent request is sent again to the same replica on a
                                          new connection first: a pooled keep-alive connection the
                                          broker closed just as it was reused is no sign of trouble
    503 from a replica (saturated)      → tried on the next one, replica stays up
    nothing left to try                 → 503 no_upstream, 504 upstream_timeout
    any other 4xx/5xx                   → the broker's error passed through (a 500 becomes 502)

The health monitor (``gateway.health``) brings marked-down replicas back and runs the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.metrics import GatewayMetrics
from voicestack_common.errors import PayloadTooLarge, Saturated, UpstreamError, UpstreamTimeout, VoicestackError
from voicestack_common.logging import REQUEST_ID_HEADER, request_id_var
from voicestack_common.upstream import MAX_ERROR_BODY, answered_error

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = 503

RequestArgs = Callable[[], dict[str, Any]]
"""Builds the keyword arguments of ``httpx.AsyncClient.build_request`` afresh for each attempt."""


class NoUpstream(VoicestackError):
    """No replica of a broker could be reached."""

    status_code = 503
    default_code = "no_upstream"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


@dataclass(eq=False)
class Replica:
    """One address of a broker, and what the last request or health check saw of it."""

    url: str
    """Base URL requests go to (a resolved address when ``host`` is set)."""
    source: str
    """The configured URL this replica comes from."""
    host: str | None = None
    """The configured host name, sent as ``Host`` (and TLS server name) to a resolved address."""
    healthy: bool = True
    busy: bool = False
    """Up, but its last health check timed out (it accepts connections: a busy broker, not a dead one)."""
    failures: int = 0
    """Health checks in a row that timed out."""
    error: str | None = None
    latency_ms: float | None = None
    checked_at: float | None = None

    def describe(self) -> dict[str, Any]:
        """The replica as ``/api/voice/health`` shows it."""
        return {
            "url": self.url,
            "healthy": self.healthy,
            "busy": self.busy,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "checked_at": self.checked_at,
        }


@dataclass(eq=False)
class ReplicaSet:
    """A broker: its replicas, its pooled client, and request routing with failover."""

    name: str
    urls: list[str]
    client: httpx.AsyncClient
    metrics: GatewayMetrics
    retries: int = 1
    retry_after: int = 5
    """``Retry-After`` seconds when no replica is reachable (about one health-check interval)."""
    max_body_bytes: int | None = None
    """Largest request body the broker accepts (its ``*_MAX_UPLOAD_BYTES``); larger ones get 413 here."""
    probe: Callable[[Replica], Awaitable[None]] | None = None
    """Checks one replica now (set by the health monitor); called when a request saw it fail."""
    replicas: list[Replica] = field(default_factory=list)
    _turn: int = 0
    _probes: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.replicas:
            self.replicas = [Replica(url, url) for url in self.urls]
        for replica in self.replicas:
            self._gauge(replica)

    @property
    def label(self) -> str:
        """The configured URLs, as the integration guide's health answer shows them."""
        return ", ".join(self.urls)

    @property
    def healthy(self) -> list[Replica]:
        """Replicas that passed their last check."""
        return [r for r in self.replicas if r.healthy]

    def set_replicas(self, replicas: list[Replica]) -> None:
        """Swap in a new replica list (after DNS changed), keeping what is known of the old ones."""
        known = {r.url: r for r in self.replicas}
        merged = [known.get(r.url, r) for r in replicas]
        for gone in set(known) - {r.url for r in merged}:
            with contextlib.suppress(KeyError):
                self.metrics.replica_up.remove(self.name, gone)
        self.replicas = merged
        for replica in merged:
            self._gauge(replica)

    def candidates(self) -> list[Replica]:
        """Replicas in the order to try them: healthy ones round-robin, then the ones marked down."""
        turn, self._turn = self._turn, self._turn + 1
        up = [r for r in self.replicas if r.healthy]
        down = [r for r in self.replicas if not r.healthy]
        if up:
            up = up[turn % len(up) :] + up[: turn % len(up)]
        if down:
            down = down[turn % len(down) :] + down[: turn % len(down)]
        return up + down

    def mark(
        self,
        replica: Replica,
        healthy: bool,
        error: str | None = None,
        latency_ms: float | None = None,
        *,
        busy: bool = False,
    ) -> None:
        """Record a replica's state; going down or coming back is logged once."""
        if replica.healthy != healthy:
            log = logger.info if healthy else logger.warning
            log(
                "%s replica %s is %s",
                self.name,
                replica.url,
                "back up" if healthy else "down",
                extra={"upstream": self.name, "replica": replica.url, "reason": error},
            )
        replica.healthy, replica.error, replica.busy = healthy, error, busy and healthy
        if latency_ms is not None:
            replica.latency_ms = latency_ms
        replica.checked_at = time.time()
        self._gauge(replica)

    def suspect(self, replica: Replica) -> None:
        """A request saw ``replica`` time out or drop the connection: probe it now, once at a time.

        One request's failure is no verdict (a broker closing on a body it refuses, a busy broker
        answering late); the probe tells a dead replica from a live one."""
        if self.probe is None or not replica.healthy:
            return
        running = self._probes.get(replica.url)
        if running is not None and not running.done():
            return
        self._probes[replica.url] = asyncio.ensure_future(self.probe(replica))

    async def close_probes(self) -> None:
        """Cancel probes still running (at shutdown)."""
        for task in self._probes.values():
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
        self._probes.clear()

    def _gauge(self, replica: Replica) -> None:
        self.metrics.replica_up.labels(self.name, replica.url).set(1 if replica.healthy else 0)

    def build(self, replica: Replica, method: str, path: str, args: dict[str, Any]) -> httpx.Request:
        """A request for one replica, with the caller's request id and the replica's host name."""
        headers = dict(args.pop("headers", None) or {})
        if (request_id := request_id_var.get()) is not None:
            headers[REQUEST_ID_HEADER] = request_id
        extensions: dict[str, Any] = {}
        if replica.host is not None:
            headers["Host"] = replica.host
            extensions["sni_hostname"] = urlsplit(replica.source).hostname
        return self.client.build_request(method, replica.url + path, headers=headers, extensions=extensions, **args)

    async def request(
        self, method: str, path: str, args: RequestArgs | None = None, *, idempotent: bool = True, stream: bool = False
    ) -> httpx.Response:
        """Send to the next healthy replica (failing over as the module docstring says).

        A response with an error status raises the matching error; with ``stream`` the
        caller owns the successful response and must close it.
        """
        attempts = 1 + self.retries
        self._check_size(method, path, args)
        last: VoicestackError | None = None
        answered: VoicestackError | None = None  # a replica's own error beats "unreachable"
        pending = deque(self.candidates()[:attempts])
        redialled = False
        sent = 0
        while pending:
            replica = pending.popleft()
            if sent:
                self.metrics.upstream_retries.labels(self.name).inc()
            sent += 1
            started = time.perf_counter()
            try:
                # The timeout bounds the whole answer (the head of a stream), not only each read:
                # a broker trickling bytes must not hold the caller past it.
                response = await asyncio.wait_for(
                    self.client.send(self.build(replica, method, path, (args or dict)()), stream=stream),
                    self.client.timeout.read,
                )
            except httpx.PoolTimeout:
                self._outcome("pool_full")
                raise Saturated(
                    f"every connection to the {self.name.upper()} broker is busy", code="gateway_saturated"
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._outcome("unreachable")
                self.mark(replica, False, f"cannot connect: {type(exc).__name__}")
                last = NoUpstream(
                    f"the {self.name.upper()} broker cannot be reached: no replica accepts connections",
                    retry_after=self.retry_after,
                )
                continue
            except (httpx.TimeoutException, TimeoutError):
                self._outcome("timeout")
                self.suspect(replica)
                last = UpstreamTimeout(
                    f"the {self.name.upper()} broker did not answer in time", code="upstream_timeout"
                )
                if idempotent:
                    continue
                raise last from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                self._outcome("dropped")
                last = UpstreamError(
                    f"the {self.name.upper()} broker dropped the connection", code="upstream_unavailable"
                )
                if not idempotent:
                    self.suspect(replica)
                    raise last from None
                if not redialled:
                    # httpx has dropped the broken connection from its pool: the same replica gets
                    # one more go (a fresh connection), then is probed and passed over like any other.
                    redialled = True
                    pending.appendleft(replica)
                    continue
                self.suspect(replica)
                continue
            self.metrics.upstream_latency.labels(self.name).observe(time.perf_counter() - started)
            if response.status_code < 400:
                self._outcome("ok")
                return response
            error = await self._error(response)
            self._outcome(f"{response.status_code // 100}xx")
            if response.status_code == _RETRYABLE_STATUS and idempotent:
                answered = error
                continue
            raise error
        raise (
            answered
            or last
            or NoUpstream(f"the {self.name.upper()} broker has no replicas", retry_after=self.retry_after)
        )

    def _check_size(self, method: str, path: str, args: RequestArgs | None) -> None:
        """413 before anything is sent when the body is over the broker's limit."""
        if self.max_body_bytes is None or args is None:
            return
        request = self.client.build_request(method, "http://size.check" + path, **args())
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(
                f"the request is larger than the {self.name.upper()} broker accepts ({self.max_body_bytes} bytes)"
            )

    def _outcome(self, outcome: str) -> None:
        self.metrics.upstream_requests.labels(self.name, outcome).inc()

    async def _error(self, response: httpx.Response) -> VoicestackError:
        """The broker's error as ours: same status and code (a broker's 500 is our 502)."""
        try:
            body = await _read_limited(response)
        finally:
            await response.aclose()
        return answered_error(response.status_code, body, response.headers)


async def _read_limited(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= MAX_ERROR_BODY:
            break
    return bytes(data[:MAX_ERROR_BODY])
