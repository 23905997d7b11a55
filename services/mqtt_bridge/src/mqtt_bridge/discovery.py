"""Home Assistant MQTT discovery: one device, a connectivity sensor per service, the last transcript.

Device-based discovery (Home Assistant 2024.11+): one retained config on
``homeassistant/device/{id}/config`` carries the device (``dev``), the origin
(``o``), the shared availability (``{prefix}/status``) and the components
(``cmps``), each with a ``p``latform and a stable ``unique_id``. It is sent on
every connection and again, after a short random delay, whenever Home
Assistant announces ``online`` on ``homeassistant/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import aiomqtt

from mqtt_bridge.mqtt import MqttLink
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.topics import OFFLINE, ONLINE, Topics, slug

logger = logging.getLogger(__name__)

ORIGIN_NAME = "voicestack-mqtt-bridge"
# Home Assistant keeps at most 255 characters of a state; the full text is in the attributes.
TRANSCRIPT_STATE_TEMPLATE = "{{ value_json.text[:255] }}"
CONNECTIVITY_TEMPLATE = "{{ 'ON' if value_json.up else 'OFF' }}"


def device_id(settings: BridgeSettings) -> str:
    """The discovery device id: configured, else the topic prefix made safe."""
    return settings.ha_device_id or slug(settings.topic_prefix)


def device_config(settings: BridgeSettings, topics: Topics, version: str) -> dict[str, Any]:
    """The device discovery payload."""
    dev_id = device_id(settings)
    components: dict[str, dict[str, Any]] = {}
    for service in settings.services:
        unique_id = f"{dev_id}_{service}_health"
        components[unique_id] = {
            "p": "binary_sensor",
            "name": service,
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": topics.service_health(service),
            "value_template": CONNECTIVITY_TEMPLATE,
            "json_attributes_topic": topics.service_health(service),
            "unique_id": unique_id,
        }
    transcript_id = f"{dev_id}_last_transcript"
    components[transcript_id] = {
        "p": "sensor",
        "name": "Last transcript",
        "icon": "mdi:text-box-outline",
        "state_topic": topics.transcripts,
        "value_template": TRANSCRIPT_STATE_TEMPLATE,
        "json_attributes_topic": topics.transcripts,
        "unique_id": transcript_id,
    }
    return {
        "dev": {
            "ids": [dev_id],
            "name": settings.ha_device_name,
            "mf": "voicestack",
            "mdl": "voicestack speech stack",
            "sw": version,
        },
        "o": {"name": ORIGIN_NAME, "sw": version},
        "avty": [{"t": topics.status, "pl_avail": ONLINE, "pl_not_avail": OFFLINE}],
        "qos": 1,
        "cmps": components,
    }


class Discovery:
    """Keeps the discovery config retained and answers Home Assistant's birth message."""

    def __init__(self, settings: BridgeSettings, link: MqttLink, topics: Topics, version: str) -> None:
        self.settings = settings
        self.link = link
        self.topic = topics.ha_device_config(device_id(settings))
        self.payload = json.dumps(device_config(settings, topics, version), separators=(",", ":")).encode()
        self._pending: asyncio.Task[None] | None = None
        link.subscribe(topics.ha_status, self.on_ha_status)

    async def start(self) -> None:
        """Hand the config to the link, which (re-)sends it on every connection."""
        await self.link.publish_retained(self.topic, self.payload)

    def on_ha_status(self, message: aiomqtt.Message) -> None:
        """Home Assistant (re)started: send discovery again, after a random delay."""
        # A retained birth is an old one, answered already by the config sent on connecting.
        if message.retain or message.payload != ONLINE.encode():
            return
        if self._pending is not None and not self._pending.done():
            return
        delay = random.uniform(0, self.settings.ha_rediscovery_max_delay)
        self._pending = asyncio.create_task(self._resend(delay))

    async def _resend(self, delay: float) -> None:
        await asyncio.sleep(delay)
        logger.info("home assistant is online; re-sending discovery", extra={"topic": self.topic})
        await self.link.publish_retained(self.topic, self.payload)

    async def close(self) -> None:
        """Cancel a pending re-send."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
