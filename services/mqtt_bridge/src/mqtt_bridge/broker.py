"""The embedded MQTT broker (amqtt) of the local stack, so a new user needs nothing else installed.

It speaks MQTT 3.1.1 only and keeps retained messages in memory; the bridge
re-publishes its retained state on every connection, so a restart loses
nothing the bridge owns. Point ``MQTT_BRIDGE_MQTT_URL`` at mosquitto (or any
broker) for MQTT 5, persistence, TLS and authentication.

Two things differ from stock amqtt 0.12:

* Clients are anonymous, so only loopback clients are accepted, whatever the
  listening address: anyone who can publish commands makes the bridge run them.
* amqtt sends a connecting client the retained messages of *every* topic filter
  any client ever subscribed to (``Broker.client_connected`` loops over the
  broker-wide ``_subscriptions``, not the client's own), so after a long run a
  client subscribed to ``zz/none`` received ``voicestack/health*``. Retained
  messages go only to clients whose own subscription matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(address: str | None) -> bool:
    """Whether a peer address is this machine (``127.0.0.0/8``, ``::1``, IPv4-mapped too)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class LoopbackOnlyAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """Anonymous clients, from this machine only."""

    async def authenticate(self, *, session: Session) -> bool | None:
        """Accept a loopback peer; refuse (and log) any other."""
        if is_loopback(session.remote_address):
            session.is_anonymous = True
            return True
        logger.warning(
            "refused an MQTT client from %s: the embedded broker serves loopback only", session.remote_address
        )
        return False


class EmbeddedBroker(Broker):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's broker with retained messages delivered by the client's own subscriptions only."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter = subscription[0]
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(subscriber.client_id == session.client_id for subscriber, _ in subscribers):
            return  # another client's filter (amqtt replays every filter on connect)
        await super()._publish_retained_messages_for_subscription(subscription, session)


def broker_config(host: str, port: int) -> dict[str, Any]:
    """One TCP listener, anonymous loopback clients, none of amqtt's chatty default plugins."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {f"{__name__}.LoopbackOnlyAuthPlugin": {}},
    }


@contextlib.asynccontextmanager
async def embedded_broker(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> AsyncIterator[Broker]:
    """An amqtt broker listening on ``host:port`` for the duration of the block."""
    if host not in LOOPBACK:
        logger.warning(
            "the embedded broker listens beyond this machine but accepts loopback clients only; "
            "use mosquitto with authentication to serve a network",
            extra={"host": host},
        )
    # amqtt's state machine logs every transition at INFO.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    broker = EmbeddedBroker(broker_config(host, port))
    await broker.start()
    logger.info("embedded MQTT broker listening", extra={"address": f"{host}:{port}"})
    try:
        yield broker
    finally:
        await broker.shutdown()


async def serve_broker(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the embedded broker until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with embedded_broker(host, port):
        await stop.wait()
    logger.info("embedded MQTT broker stopped")
