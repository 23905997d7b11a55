"""Polls ``/healthz`` and ``/readyz`` of every service and publishes retained health JSON.

A replica is ``up`` (live and ready), ``busy`` (it accepted the probe's
connection but answered too late: inference holds its CPU, it still serves),
``not_ready`` (live, ``/readyz`` not 200) or ``down`` (refused, reset, or an
error status). ``busy`` counts as up in every roll-up. A service is ``up`` when all its replicas are, ``degraded`` when
some are, ``down`` when none is; the overall state reads the same way over
services. Each service's state goes to ``{prefix}/health/{service}`` and the
summary to ``{prefix}/health``, when it changes and every heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.mqtt import MqttLink
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.topics import Topics

logger = logging.getLogger(__name__)


def iso(timestamp: float) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


SERVING = frozenset({"up", "busy"})
"""Replica states that serve requests."""


def rollup(states: list[str]) -> str:
    """``up`` when every part is up, ``down`` when none is, else ``degraded``."""
    ups = sum(state in SERVING for state in states)
    if ups == len(states):
        return "up"
    return "down" if ups == 0 else "degraded"


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """One base URL's probe result."""

    url: str
    status: str
    live: bool
    ready: bool
    latency_ms: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The replica's part of the service payload."""
        body: dict[str, Any] = {
            "url": self.url,
            "status": self.status,
            "live": self.live,
            "ready": self.ready,
            "latency_ms": self.latency_ms,
        }
        if self.error:
            body["error"] = self.error
        return body


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """One service over all its replicas."""

    name: str
    status: str
    replicas: tuple[ReplicaHealth, ...]

    @property
    def up(self) -> bool:
        """At least one replica can serve."""
        return any(replica.status in SERVING for replica in self.replicas)

    @property
    def signature(self) -> tuple[str, ...]:
        """What counts as a change (latencies and timestamps do not)."""
        return (self.status, *(f"{replica.url}={replica.status}" for replica in self.replicas))


class HealthPoller:
    """Probes every configured service each ``health_interval``; publishes changes and heartbeats."""

    def __init__(
        self, settings: BridgeSettings, http: httpx.AsyncClient, link: MqttLink, topics: Topics, metrics: BridgeMetrics
    ) -> None:
        self.settings = settings
        self.http = http
        self.link = link
        self.topics = topics
        self.metrics = metrics
        self.current: dict[str, ServiceHealth] = {}
        self._since: dict[str, float] = {}
        self._overall: tuple[str, float] | None = None
        self._heartbeat_at = float("-inf")

    async def run(self) -> None:
        """Poll at a fixed rate until cancelled."""
        interval = self.settings.health_interval
        next_at = time.monotonic()
        while True:
            try:
                await self.poll_and_publish()
            except Exception:
                logger.exception("health poll failed")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow poll skips ticks instead of bunching them
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def poll_and_publish(self) -> None:
        """Probe everything once; publish what changed, or everything when the heartbeat is due."""
        names = list(self.settings.services)
        results = await asyncio.gather(*(self.probe_service(name) for name in names))
        now = time.time()
        heartbeat = time.monotonic() - self._heartbeat_at >= self.settings.health_heartbeat
        changed = [h for h in results if h.name not in self.current or h.signature != self.current[h.name].signature]
        for service in changed:
            self._since[service.name] = now
            previous = self.current.get(service.name)
            if previous is not None:
                logger.info(
                    "service health changed",
                    extra={"service": service.name, "from": previous.status, "to": service.status},
                )
        self.current.update({service.name: service for service in results})
        overall = rollup([service.status for service in results])
        if self._overall is None or self._overall[0] != overall:
            self._overall = (overall, now)
        if heartbeat:
            self._heartbeat_at = time.monotonic()
        for service in results if heartbeat else changed:
            await self.link.publish_retained(self.topics.service_health(service.name), self._payload(service, now))
        if heartbeat or changed:
            await self.link.publish_retained(self.topics.health, self._overall_payload(now))

    def _payload(self, service: ServiceHealth, now: float) -> bytes:
        body = {
            "service": service.name,
            "status": service.status,
            "up": service.up,
            "since": iso(self._since.get(service.name, now)),
            "checked_at": iso(now),
            "replicas": [replica.to_json() for replica in service.replicas],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def _overall_payload(self, now: float) -> bytes:
        status, since = self._overall or ("down", now)
        body = {
            "status": status,
            "services": {name: health.status for name, health in self.current.items()},
            "since": iso(since),
            "checked_at": iso(now),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    async def probe_service(self, name: str) -> ServiceHealth:
        """Probe every replica of ``name`` at once."""
        replicas = await asyncio.gather(*(self.probe_replica(url) for url in self.settings.services[name]))
        for replica in replicas:
            self.metrics.health_polls.labels(service=name, result=replica.status).inc()
        return ServiceHealth(name, rollup([replica.status for replica in replicas]), tuple(replicas))

    async def probe_replica(self, url: str) -> ReplicaHealth:
        """``/healthz`` and ``/readyz`` of one base URL, concurrently."""
        started = time.perf_counter()
        (live, live_error, live_late), (ready, ready_error, ready_late) = await asyncio.gather(
            self._get(f"{url}/healthz"), self._get(f"{url}/readyz")
        )
        latency = round((time.perf_counter() - started) * 1000, 1)
        if (live_late and ready_late) or (live_late and ready) or (live and ready_late):
            return ReplicaHealth(url, "busy", True, True, latency, live_error or ready_error)
        if not live:
            return ReplicaHealth(url, "down", False, False, latency, live_error)
        if not ready:
            return ReplicaHealth(url, "not_ready", True, False, latency, ready_error)
        return ReplicaHealth(url, "up", True, True, latency)

    async def _get(self, url: str) -> tuple[bool, str | None, bool]:
        """(answered 200, why not, timed out after the connection was accepted)."""
        path = url.rsplit("/", 1)[-1]
        try:
            response = await self.http.get(url, timeout=self.settings.health_timeout)
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            return False, f"/{path} timed out", True
        except httpx.HTTPError as exc:
            return False, f"/{path}: {type(exc).__name__}", False
        if response.status_code != 200:
            return False, f"/{path} answered {response.status_code}", False
        return True, None, False
