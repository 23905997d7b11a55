"""HTTP routes of the MQTT bridge."""
