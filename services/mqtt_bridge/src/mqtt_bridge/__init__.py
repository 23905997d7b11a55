"""voicestack's mqtt_bridge."""

__version__ = "0.1.0"
