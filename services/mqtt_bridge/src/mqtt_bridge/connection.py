"""From settings to connection parameters: broker address, credentials, TLS context."""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

from mqtt_bridge.settings import MQTT_SCHEMES, BridgeSettings


def tls_context(settings: BridgeSettings) -> ssl.SSLContext | None:
    """The TLS context for ``mqtts://`` URLs: CA file (or system store), optional client certificate."""
    if urlsplit(settings.mqtt_url).scheme != "mqtts":
        return None
    context = ssl.create_default_context(cafile=str(settings.mqtt_tls_ca_file) if settings.mqtt_tls_ca_file else None)
    if settings.mqtt_tls_cert_file is not None:
        context.load_cert_chain(
            str(settings.mqtt_tls_cert_file), str(settings.mqtt_tls_key_file) if settings.mqtt_tls_key_file else None
        )
    if settings.mqtt_tls_insecure:
        context.check_hostname = False
    return context


def broker_address(settings: BridgeSettings) -> tuple[str, int]:
    """Host and port of the broker URL (credentials left out, for logs)."""
    parts = urlsplit(settings.mqtt_url)
    return parts.hostname or "127.0.0.1", parts.port or MQTT_SCHEMES[parts.scheme]


def credentials(settings: BridgeSettings) -> tuple[str | None, str | None]:
    """Username and password: the settings fields, else the URL's ``user:password@``."""
    parts = urlsplit(settings.mqtt_url)
    username = settings.mqtt_username or (unquote(parts.username) if parts.username else None)
    if settings.mqtt_password is not None:
        password: str | None = settings.mqtt_password.get_secret_value()
    else:
        password = unquote(parts.password) if parts.password else None
    return username, password
