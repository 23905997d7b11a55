"""Replica health: background checks that bring replicas back, DNS expansion, the live health answer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from gateway.replicas import Replica, ReplicaSet

logger = logging.getLogger(__name__)

HEALTH_PATH = "/readyz"
# Host names used as written: the resolver may return ::1 next to 127.0.0.1 while a
# local broker listens on one of them only.
_NEVER_EXPAND = {"localhost"}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def expand(url: str, timeout: float) -> list[Replica]:
    """A configured URL as one replica per address its host name resolves to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in _NEVER_EXPAND or _is_address(host):
        return [Replica(url, url)]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError) as exc:
        logger.warning("cannot resolve %s (%s); using the name as written", host, exc)
        return [Replica(url, url)]
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(addresses) <= 1:
        return [Replica(url, url)]
    replicas = []
    for address in sorted(addresses):
        shown = f"[{address}]" if ":" in address else address
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        replicas.append(Replica(urlunsplit((parts.scheme, netloc, "", "", "")), url, host=parts.netloc))
    return replicas


class BridgeProbe:
    """The MQTT bridge, as its ``/readyz`` shows it: alive or not, and its link to the MQTT broker."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self.state: dict[str, Any] = {"url": url, "healthy": False, "error": "not checked yet"}

    async def check(self, timeout: float) -> None:
        """One probe; a 503 with its checks is a live bridge whose MQTT link is down."""
        started = time.perf_counter()
        try:
            response = await self.client.get(self.url + HEALTH_PATH, timeout=timeout)
            checks = response.json().get("checks", {}) if response.status_code in (200, 503) else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self.state = {"url": self.url, "healthy": False, "error": f"health check failed: {type(exc).__name__}"}
            return
        latency = round((time.perf_counter() - started) * 1000, 2)
        if not isinstance(checks, dict):
            self.state = {
                "url": self.url,
                "healthy": False,
                "latency_ms": latency,
                "error": f"HTTP {response.status_code}",
            }
            return
        self.state = {
            "url": self.url,
            "healthy": True,
            "latency_ms": latency,
            "error": None,
            "mqtt_broker": checks.get("broker"),
            "mqtt_connected": bool(checks.get("mqtt_connected")),
            "mqtt_error": checks.get("mqtt_error"),
        }


class HealthMonitor:
    """Checks every replica of every upstream: on a timer, and live for ``/api/voice/health``."""

    def __init__(
        self,
        upstreams: dict[str, ReplicaSet],
        *,
        interval: float,
        timeout: float,
        cache_seconds: float,
        down_after: int = 3,
        resolve: bool,
        resolve_interval: float,
        bridge: BridgeProbe | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.bridge = bridge
        self.interval = interval
        self.timeout = timeout
        self.down_after = down_after
        self.cache_seconds = cache_seconds
        self.resolve = resolve
        self.resolve_interval = resolve_interval
        self._last_check = 0.0
        self._running: asyncio.Task[None] | None = None
        for upstream in upstreams.values():
            upstream.probe = functools.partial(self.check_replica, upstream)

    async def check_replica(self, upstream: ReplicaSet, replica: Replica) -> None:
        """One readiness probe; marks the replica up, busy or down.

        Refused or reset connections mean a dead replica: down at once. A probe that times out
        on a replica that accepted the connection is a busy one (inference holds its CPU): it stays
        in rotation, marked busy, until ``down_after`` probes in a row have timed out."""
        started = time.perf_counter()
        try:
            request = upstream.build(replica, "GET", HEALTH_PATH, {"timeout": self.timeout})
            response = await upstream.client.send(request)
            await response.aclose()
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            replica.failures += 1
            if replica.healthy and replica.failures < self.down_after:
                upstream.mark(replica, True, f"busy: health check timed out ({replica.failures} in a row)", busy=True)
            else:
                upstream.mark(replica, False, f"health check failed: {type(exc).__name__}")
            return
        except httpx.HTTPError as exc:
            replica.failures = 0
            upstream.mark(replica, False, f"health check failed: {type(exc).__name__}")
            return
        replica.failures = 0
        latency = round((time.perf_counter() - started) * 1000, 2)
        if response.status_code == 200:
            upstream.mark(replica, True, None, latency)
        else:
            upstream.mark(replica, False, f"not ready (HTTP {response.status_code})", latency)

    async def check_all(self) -> None:
        """Probe every replica (and the MQTT bridge) at once."""
        await asyncio.gather(
            *(
                self.check_replica(upstream, replica)
                for upstream in self.upstreams.values()
                for replica in list(upstream.replicas)
            ),
            *([self.bridge.check(self.timeout)] if self.bridge is not None else []),
        )
        self._last_check = time.monotonic()

    async def fresh(self) -> None:
        """Live state for a health answer: a check younger than ``cache_seconds`` is reused, and
        concurrent callers wait for the same check."""
        if time.monotonic() - self._last_check < self.cache_seconds:
            return
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self.check_all())
        await asyncio.shield(self._running)

    async def resolve_all(self) -> None:
        """Re-read DNS for every configured URL and update the replica lists."""
        if not self.resolve:
            return
        for upstream in self.upstreams.values():
            lists = await asyncio.gather(*(expand(url, self.timeout) for url in upstream.urls))
            replicas = [replica for found in lists for replica in found]
            if [r.url for r in replicas] != [r.url for r in upstream.replicas]:
                logger.info("%s replicas: %s", upstream.name, ", ".join(r.url for r in replicas))
                upstream.set_replicas(replicas)

    async def run(self) -> None:
        """The background loop: health every ``interval``, DNS every ``resolve_interval``."""
        last_resolve = time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            try:
                if time.monotonic() - last_resolve >= self.resolve_interval:
                    last_resolve = time.monotonic()
                    await self.resolve_all()
                await self.check_all()
            except Exception:  # the loop must outlive any one bad round
                logger.exception("health check round failed")

    async def close(self) -> None:
        """Stop a live check still running."""
        if self._running is not None and not self._running.done():
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running

    def report(self, name: str) -> dict[str, Any]:
        """One upstream's part of the health answer."""
        upstream = self.upstreams[name]
        latencies = [r.latency_ms for r in upstream.replicas if r.healthy and r.latency_ms is not None]
        return {
            "healthy": bool(upstream.healthy),
            "url": upstream.label,
            "latency_ms": min(latencies) if latencies else None,
            "replicas": [r.describe() for r in upstream.replicas],
        }
