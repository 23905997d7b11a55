"""What ``POST /v1/publish`` may publish: the bridge's allow-list, minus the topics it keeps for itself."""

from __future__ import annotations

from collections.abc import Iterable

from paho.mqtt.client import topic_matches_sub

from voicestack_common.errors import ClientError


class TopicNotAllowed(ClientError):
    """The topic is outside ``MQTT_BRIDGE_PUBLISH_ALLOW``, or reserved (``topic_reserved``)."""

    status_code = 403
    default_code = "topic_not_allowed"


class PublishPolicy:
    """Admits a topic when an allowed filter matches it and no reserved one does."""

    def __init__(self, allow: Iterable[str], reserved: Iterable[str]) -> None:
        self.allow = tuple(allow)
        self.reserved = tuple(reserved)

    def check(self, topic: str) -> None:
        """Return if ``topic`` may be published to, else raise ``TopicNotAllowed``."""
        if any(topic_matches_sub(f, topic) for f in self.reserved):
            raise TopicNotAllowed(f"the topic {topic!r} is reserved for the bridge itself", code="topic_reserved")
        if not any(topic_matches_sub(f, topic) for f in self.allow):
            hint = "no allowed filter matches it" if self.allow else "the allow-list is empty"
            raise TopicNotAllowed(f"publishing to {topic!r} is not allowed: {hint} (MQTT_BRIDGE_PUBLISH_ALLOW)")
