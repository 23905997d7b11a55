"""The embedded MQTT broker (amqtt) of the local stack, so a new user needs nothing else installed.

It speaks MQTT 3.1.1 only and keeps retained messages in memory; the bridge
re-publishes its retained state on every connection, so a restart loses
nothing the bridge owns. Point ``MQTT_BRIDGE_MQTT_URL`` at mosquitto (or any
broker) for MQTT 5, persistence, TLS and authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from amqtt.broker import Broker

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883


def broker_config(host: str, port: int) -> dict[str, Any]:
    """One TCP listener, anonymous clients, none of amqtt's chatty default plugins."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


@contextlib.asynccontextmanager
async def embedded_broker(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> AsyncIterator[Broker]:
    """An amqtt broker listening on ``host:port`` for the duration of the block."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "the embedded broker accepts anonymous clients; it listens beyond this machine", extra={"host": host}
        )
    # amqtt's state machine logs every transition at INFO.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    broker = Broker(broker_config(host, port))
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
