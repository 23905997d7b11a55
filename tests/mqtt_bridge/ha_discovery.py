"""What Home Assistant checks in a device-based discovery payload, restated for tests.

Follows ``DEVICE_DISCOVERY_SCHEMA`` of Home Assistant's MQTT integration
(homeassistant/components/mqtt/schemas.py) and the abbreviation tables of
``abbreviations.py``: ``device`` with at least one identifier or connection,
``origin`` with a ``name``, ``components`` each with a supported ``platform``
(and a ``unique_id`` for entities), availability as a topic or a list, no
other keys at the top level, and topics that are valid to subscribe to.
"""

from __future__ import annotations

import re
from typing import Any

DISCOVERY_TOPIC = re.compile(r"^(?P<prefix>.+)/device/(?P<object_id>[a-zA-Z0-9_-]+)/config$")
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "cmps": "components",
    "dev": "device",
    "dev_cla": "device_class",
    "e": "encoding",
    "ent_cat": "entity_category",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "o": "origin",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "stat_t": "state_topic",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "hw": "hw_version",
    "ids": "identifiers",
    "mdl": "model",
    "mdl_id": "model_id",
    "mf": "manufacturer",
    "name": "name",
    "sa": "suggested_area",
    "sn": "serial_number",
    "sw": "sw_version",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
DEVICE_KEYS = set(DEVICE_ABBREVIATIONS.values()) | {"via_device"}
TOP_LEVEL_KEYS = {
    "device",
    "components",
    "origin",
    "state_topic",
    "command_topic",
    "qos",
    "encoding",
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
}
SUPPORTED_PLATFORMS = {
    "alarm_control_panel",
    "binary_sensor",
    "button",
    "camera",
    "climate",
    "cover",
    "device_automation",
    "device_tracker",
    "event",
    "fan",
    "humidifier",
    "image",
    "lawn_mower",
    "light",
    "lock",
    "notify",
    "number",
    "scene",
    "select",
    "sensor",
    "siren",
    "switch",
    "tag",
    "text",
    "update",
    "vacuum",
    "valve",
    "water_heater",
}
NON_ENTITY_PLATFORMS = {"device_automation", "tag"}
BINARY_SENSOR_CLASSES = {
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
}


def expand(mapping: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    """Replace abbreviated keys by their full names, as Home Assistant does on receipt."""
    return {table.get(key, key): value for key, value in mapping.items()}


def valid_subscribe_topic(topic: Any) -> bool:
    """Non-empty, no NUL, ``#`` only as the whole last level, ``+`` only as a whole level."""
    if not isinstance(topic, str) or not topic or "\0" in topic or len(topic.encode()) > 65535:
        return False
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def validate_device_discovery(topic: str, payload: dict[str, Any]) -> list[str]:
    """Everything Home Assistant would reject in this discovery message (empty when valid)."""
    problems: list[str] = []
    if not DISCOVERY_TOPIC.match(topic):
        problems.append(f"topic {topic!r} is not <prefix>/device/<object_id>/config")
    config = expand(payload, ABBREVIATIONS)
    if extra := set(config) - TOP_LEVEL_KEYS:
        problems.append(f"keys not allowed at the top level: {sorted(extra)}")
    device = expand(config.get("device") or {}, DEVICE_ABBREVIATIONS)
    if not device.get("identifiers") and not device.get("connections"):
        problems.append("device needs at least one identifier or connection")
    if extra := set(device) - DEVICE_KEYS:
        problems.append(f"unknown device keys: {sorted(extra)}")
    origin = expand(config.get("origin") or {}, ORIGIN_ABBREVIATIONS)
    if not isinstance(origin.get("name"), str) or not origin["name"]:
        problems.append("origin needs a name")
    if "availability" in config and "availability_topic" in config:
        problems.append("availability and availability_topic are exclusive")
    for item in config.get("availability", []):
        item = expand(item, ABBREVIATIONS)
        if not valid_subscribe_topic(item.get("topic")):
            problems.append(f"availability topic {item.get('topic')!r} is invalid")
    if "availability_topic" in config and not valid_subscribe_topic(config["availability_topic"]):
        problems.append("availability_topic is invalid")
    if config.get("qos", 0) not in (0, 1, 2):
        problems.append("qos must be 0, 1 or 2")
    components = config.get("components")
    if not isinstance(components, dict) or not components:
        problems.append("components must be a non-empty mapping")
        return problems
    unique_ids: list[str] = []
    for component_id, raw in components.items():
        component = expand(raw, ABBREVIATIONS)
        platform = component.get("platform")
        if platform not in SUPPORTED_PLATFORMS:
            problems.append(f"{component_id}: platform {platform!r} is not supported")
        if platform not in NON_ENTITY_PLATFORMS:
            if not component.get("unique_id"):
                problems.append(f"{component_id}: entity components need a unique_id")
            unique_ids.append(component.get("unique_id", ""))
        for key, value in component.items():
            if key.endswith("_topic") and not valid_subscribe_topic(value):
                problems.append(f"{component_id}: {key} {value!r} is invalid")
        if platform == "binary_sensor" and component.get("device_class") not in (None, *BINARY_SENSOR_CLASSES):
            problems.append(f"{component_id}: binary_sensor device_class {component['device_class']!r}")
        if platform in ("sensor", "binary_sensor") and "state_topic" not in component and "state_topic" not in config:
            problems.append(f"{component_id}: {platform} needs a state_topic")
    if len(set(unique_ids)) != len(unique_ids):
        problems.append("unique_ids repeat")
    return problems
