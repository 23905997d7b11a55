"""The bridge's one MQTT connection: reconnects with backoff, birth and last will, retained state.

While connected, the link subscribes, re-sends every retained state it holds
(discovery, health), announces ``online`` and runs its workers (the outbox
publisher, the message dispatcher). When the connection breaks, the workers
are cancelled and it reconnects after a growing, jittered delay. ``stop``
announces ``offline`` and disconnects cleanly; a crash leaves that to the
broker, which publishes the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge.connection import broker_address, credentials, tls_context
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.topics import OFFLINE, ONLINE, Topics

logger = logging.getLogger(__name__)

Worker = Callable[[aiomqtt.Client], Coroutine[Any, Any, None]]
Handler = Callable[[aiomqtt.Message], None]
# CONNACK codes meaning "I do not speak this protocol": 1 in MQTT 3.1.1, 0x84 in MQTT 5.
_PROTOCOL_REFUSED = {1, 0x84}
# Until a protocol version is known to work, a CONNACK that takes longer than this means the broker
# did not understand the CONNECT (a healthy broker answers in milliseconds).
AUTO_PROBE_TIMEOUT = 3.0
# Incoming messages buffered before aiomqtt drops (and logs) the excess: bounds memory under a flood.
MAX_QUEUED_INCOMING = 1000


class NotConnected(Exception):
    """The broker is not reachable right now."""


class MqttLink:
    """One MQTT client at a time, re-created on every reconnect."""

    def __init__(self, settings: BridgeSettings, topics: Topics, metrics: BridgeMetrics) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.client_id = settings.mqtt_client_id or f"voicestack-bridge-{secrets.token_hex(4)}"
        self.protocol = (
            aiomqtt.ProtocolVersion.V311 if settings.mqtt_protocol == "3.1.1" else aiomqtt.ProtocolVersion.V5
        )
        self.client: aiomqtt.Client | None = None
        self.last_error: str | None = None
        self._tls = tls_context(settings)
        self._retained: dict[str, bytes] = {}
        self._handlers: list[tuple[str, Handler]] = []
        self._workers: list[Worker] = []
        self._stopping = asyncio.Event()
        self._settled = False  # a connection has succeeded: the protocol version is known to work
        self._json_properties: Properties | None = None

    @property
    def connected(self) -> bool:
        """True while a connection is established."""
        return self.client is not None

    @property
    def is_v5(self) -> bool:
        """True when the current (or next) connection speaks MQTT 5."""
        return self.protocol == aiomqtt.ProtocolVersion.V5

    @property
    def protocol_name(self) -> str:
        """``5`` or ``3.1.1``."""
        return "5" if self.is_v5 else "3.1.1"

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler`` (which must not block) for every message matching ``topic_filter``."""
        self._handlers.append((topic_filter, handler))

    def add_worker(self, worker: Worker) -> None:
        """Run ``worker(client)`` for as long as each connection lasts."""
        self._workers.append(worker)

    def json_properties(self, *, fresh: bool = False) -> Properties | None:
        """MQTT 5 properties saying the payload is UTF-8 JSON (None on 3.1.1); shared unless ``fresh``."""
        # Building them costs more than the publish itself, and paho only reads them.
        if not self.is_v5:
            return None
        if fresh or self._json_properties is None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.PayloadFormatIndicator = 1
            properties.ContentType = "application/json"
            if fresh:
                return properties
            self._json_properties = properties
        return self._json_properties

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, properties: Properties | None = None
    ) -> None:
        """Publish with QoS 1 and wait for the PUBACK; NotConnected when the broker is away."""
        client = self.client
        if client is None:
            raise NotConnected("not connected to the MQTT broker")
        try:
            await client.publish(
                topic, payload, qos=1, retain=retain, properties=properties, timeout=self.settings.mqtt_timeout
            )
        except aiomqtt.MqttError as exc:
            raise NotConnected(str(exc)) from exc

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        """Set a retained state: kept here and re-sent on every connection, published now if connected."""
        self._retained[topic] = payload
        with contextlib.suppress(NotConnected):
            await self.publish(topic, payload, retain=True, properties=self.json_properties())

    def _client(self) -> aiomqtt.Client:
        host, port = broker_address(self.settings)
        username, password = credentials(self.settings)
        timeout = self.settings.mqtt_timeout
        if self.settings.mqtt_protocol == "auto" and not self._settled:
            timeout = min(timeout, AUTO_PROBE_TIMEOUT)
        client = aiomqtt.Client(
            host,
            port,
            username=username,
            password=password,
            identifier=self.client_id,
            protocol=self.protocol,
            keepalive=self.settings.mqtt_keepalive,
            timeout=timeout,
            will=aiomqtt.Will(self.topics.status, OFFLINE.encode(), qos=1, retain=True),
            tls_context=self._tls,
            max_inflight_messages=self.settings.mqtt_max_inflight,
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
            logger=logging.getLogger("mqtt_bridge.paho"),
        )
        # A full batch awaiting PUBACKs is normal here, not the leak aiomqtt warns about.
        client.pending_calls_threshold = self.settings.publish_batch + self.settings.command_concurrency * 2 + 100
        return client

    async def run(self) -> None:
        """Connect, serve, reconnect, until ``stop``."""
        delay = self.settings.reconnect_min_delay
        established = 0
        host, port = broker_address(self.settings)
        while not self._stopping.is_set():
            connected = False
            try:
                async with self._client() as client:
                    connected, self._settled = True, True
                    client.timeout = self.settings.mqtt_timeout
                    established += 1
                    if established > 1:
                        self.metrics.reconnects.inc()
                    delay = self.settings.reconnect_min_delay
                    logger.info(
                        "connected to the MQTT broker",
                        extra={"broker": f"{host}:{port}", "protocol": self.protocol_name, "client_id": self.client_id},
                    )
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                if not connected and self._try_other_protocol(exc):
                    continue
                self._failed(str(exc) or type(exc).__name__, connected)
            except Exception as exc:
                logger.exception("the MQTT connection failed unexpectedly")
                self._failed(repr(exc), connected)
            finally:
                self.client = None
                self.metrics.connected.set(0)
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.settings.reconnect_max_delay)

    def _try_other_protocol(self, exc: aiomqtt.MqttError) -> bool:
        """In ``auto`` mode, until a connection succeeded: switch protocols when this one was not understood."""
        if self.settings.mqtt_protocol != "auto" or self._settled:
            return False
        code = getattr(getattr(exc, "rc", None), "value", getattr(exc, "rc", None))
        if isinstance(exc, MqttConnectError) and code in _PROTOCOL_REFUSED and self.is_v5:
            logger.info("the MQTT broker refuses MQTT 5; using 3.1.1")
            self.protocol = aiomqtt.ProtocolVersion.V311
            return True
        if "timed out" in str(exc):
            # Some 3.1.1-only brokers (amqtt) cannot parse an MQTT 5 CONNECT and never answer it:
            # alternate until one version gets a CONNACK (a slow broker just costs another attempt).
            self.protocol = aiomqtt.ProtocolVersion.V311 if self.is_v5 else aiomqtt.ProtocolVersion.V5
            logger.info(
                "no answer to the MQTT CONNECT; trying the other protocol version",
                extra={"protocol": self.protocol_name},
            )
        return False

    def _failed(self, reason: str, was_connected: bool) -> None:
        self.last_error = reason
        if was_connected:
            logger.warning("lost the MQTT broker; reconnecting", extra={"reason": reason})
        else:
            self.metrics.connect_failures.inc()
            logger.warning("cannot reach the MQTT broker; retrying", extra={"reason": reason})

    async def _serve(self, client: aiomqtt.Client) -> None:
        for topic_filter, _ in self._handlers:
            await client.subscribe(topic_filter, qos=1)
        self.client = client
        properties = self.json_properties()
        # Read each value as it is sent: a newer one set meanwhile was published directly, after it.
        for topic in list(self._retained):
            await client.publish(topic, self._retained[topic], qos=1, retain=True, properties=properties)
        await client.publish(self.topics.status, ONLINE.encode(), qos=1, retain=True)
        self.last_error = None
        self.metrics.connected.set(1)
        tasks = [asyncio.create_task(worker(client)) for worker in (*self._workers, self._dispatch)]
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, stop):
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
        if stop in done:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    self.topics.status,
                    OFFLINE.encode(),
                    qos=1,
                    retain=True,
                    timeout=min(self.settings.mqtt_timeout, 3.0),
                )
            logger.info("disconnecting from the MQTT broker")
            return
        for task in done:
            if (error := task.exception()) is not None:
                raise error
        raise aiomqtt.MqttError("a connection worker ended")

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            for topic_filter, handler in self._handlers:
                if message.topic.matches(topic_filter):
                    try:
                        handler(message)
                    except Exception:
                        logger.exception("handling a message on %s failed", message.topic.value)

    async def stop(self) -> None:
        """Ask ``run`` to announce ``offline``, disconnect and return."""
        self._stopping.set()

    def state(self) -> dict[str, Any]:
        """What /readyz reports about the connection."""
        host, port = broker_address(self.settings)
        return {
            "mqtt_connected": self.connected,
            "broker": f"{host}:{port}",
            "protocol": self.protocol_name,
            "client_id": self.client_id,
            **({"mqtt_error": self.last_error} if self.last_error else {}),
        }
