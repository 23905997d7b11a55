"""MQTT bridge settings: ``MQTT_BRIDGE_*`` environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import aiomqtt
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from voicestack_common.settings import ServiceSettings, env_aliases, names_list

MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
# Topic levels we create from names must be plain: no wildcards, separators or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_SERVICES: dict[str, list[str]] = {
    "gateway": ["http://127.0.0.1:8000"],
    "stt_broker": ["http://127.0.0.1:9082"],
    "tts_broker": ["http://127.0.0.1:8080"],
}


def default_outbox_path() -> Path:
    """``$XDG_DATA_HOME/voicestack/mqtt-bridge/outbox.sqlite3``, else under ``~/.local/share``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voicestack" / "mqtt-bridge" / "outbox.sqlite3"


class BridgeSettings(ServiceSettings):
    """Configuration of the MQTT bridge."""

    model_config = SettingsConfigDict(env_prefix="MQTT_BRIDGE_")

    port: int = Field(default=9090, ge=0, le=65535)
    """TCP port of the bridge's HTTP API."""

    max_upload_bytes: int = Field(default=512 * 1024, gt=0)
    """Largest event accepted on ``POST /v1/events`` (413 above it); a 100,000-character
    transcript in UTF-8 fits."""

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    """MQTT broker: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS); ``user:password@``
    in the URL is accepted, the fields below take precedence."""

    mqtt_username: str | None = None
    """MQTT username; unset connects anonymously (or with the URL's user)."""

    mqtt_password: SecretStr | None = None
    """MQTT password."""

    mqtt_client_id: str | None = None
    """MQTT client id; unset gives ``voicestack-bridge-`` and a random suffix per process
    (two clients with one id would keep disconnecting each other)."""

    mqtt_protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """MQTT protocol version; ``auto`` tries 5 and falls back to 3.1.1 when the broker refuses it
    or does not answer an MQTT 5 connection (amqtt)."""

    mqtt_keepalive: int = Field(default=30, ge=5, le=65535)
    """Seconds between keepalive pings; the broker publishes ``offline`` about 1.5 times this
    long after the bridge vanishes."""

    mqtt_tls_ca_file: Path | None = None
    """PEM file of CA certificates to verify the broker with (``mqtts://``); unset uses the
    system's trust store."""

    mqtt_tls_cert_file: Path | None = None
    """PEM client certificate, for brokers that authenticate clients by certificate."""

    mqtt_tls_key_file: Path | None = None
    """PEM private key of the client certificate (unencrypted)."""

    mqtt_tls_insecure: bool = False
    """Skip the check that the broker's certificate names its host (self-signed test brokers only)."""

    mqtt_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for a connection, or for the broker's acknowledgement of a publish,
    before the connection is treated as lost and re-established."""

    mqtt_max_inflight: int = Field(default=100, ge=1, le=65535)
    """QoS 1 messages on the wire awaiting the broker's PUBACK at once."""

    reconnect_min_delay: float = Field(default=0.5, gt=0)
    """First wait, in seconds, before reconnecting after the broker was lost; it doubles per
    failed attempt (with jitter) so a restarting broker is not flooded."""

    reconnect_max_delay: float = Field(default=30.0, gt=0)
    """Longest wait between reconnection attempts, in seconds."""

    topic_prefix: str = "voicestack"
    """First level(s) of every topic the bridge publishes (``{prefix}/transcripts``, ...)."""

    outbox_path: Path = Field(default_factory=default_outbox_path)
    """SQLite file of the durable outbox (events accepted but not yet acknowledged by the broker)."""

    outbox_sync: Literal["FULL", "NORMAL"] = "FULL"
    """``FULL`` syncs every accepted event to disk before the 202 (kept across power loss);
    ``NORMAL`` keeps them across process crashes only (faster on slow disks)."""

    outbox_max_events: int = Field(default=100_000, ge=1)
    """Events the outbox holds while the broker is away; beyond it new events get 503."""

    dedup_retention: float = Field(default=86_400.0, gt=0)
    """Seconds an accepted ``event_id`` is remembered after delivery, so a retried POST
    within it is not published twice."""

    publish_batch: int = Field(default=100, ge=1, le=10_000)
    """Events taken from the outbox and published together (each still waits for its PUBACK)."""

    services: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SERVICES.items()})
    """Services whose ``/healthz`` and ``/readyz`` are polled: name → base URLs of its replicas,
    as JSON, or one ``MQTT_BRIDGE_SERVICES__<NAME>`` (a JSON list) per service; either replaces
    the whole default map."""

    health_interval: float = Field(default=10.0, gt=0)
    """Seconds between health polls; a stopped service shows within two intervals."""

    health_heartbeat: float = Field(default=60.0, gt=0)
    """Seconds between re-publications of unchanged health, so consumers can tell stale state."""

    health_timeout: float = Field(default=3.0, gt=0)
    """Seconds one ``/healthz`` or ``/readyz`` probe may take before it counts as down."""

    gateway_url: str = "http://127.0.0.1:8000"
    """Base URL of the gateway, which executes MQTT commands."""

    gateway_api_key: SecretStr | None = None
    """API key for the gateway's commands, when the gateway requires one (``GATEWAY_API_KEYS``)."""

    commands: bool = True
    """Serve ``{prefix}/cmd/synthesize`` and ``{prefix}/cmd/transcribe`` requests."""

    command_timeout: float = Field(default=120.0, gt=0)
    """Seconds a command may take at the gateway before it is answered ``upstream_timeout``."""

    command_concurrency: int = Field(default=4, ge=1, le=256)
    """Commands executed at once; as many more may wait, beyond that they are answered ``saturated``."""

    command_max_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest command payload (base64 audio included) and largest audio fetched from a URL."""

    command_audio_urls: bool = False
    """Let ``transcribe`` commands name an ``audio_url`` for the bridge to fetch (http/https), from
    the hosts in ``MQTT_BRIDGE_COMMAND_AUDIO_URL_HOSTS`` only. Off by default: whoever can publish to
    the broker would otherwise make the bridge fetch any URL its network reaches."""

    command_audio_url_hosts: str = ""
    """Hosts an ``audio_url`` may name, comma-separated (``nas.lan``, ``nas.lan:8080``,
    ``*.media.lan``); needed with ``MQTT_BRIDGE_COMMAND_AUDIO_URLS``. ``*`` allows any host: only
    where every publisher is trusted. Redirects are not followed."""

    publish_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=env_aliases("MQTT_BRIDGE_PUBLISH_ALLOW", "MQTT_PUBLISH_ALLOW", "publish_allow"),
    )
    """Topics ``POST /v1/publish`` (an assistant's ``mqtt_publish`` tool) may publish to: MQTT topic
    filters, comma-separated or a JSON list, ``+`` and ``#`` matching as in a subscription
    (``home/+/light/set,home/scenes/#``). Empty (the default) refuses every publish. The bridge's
    own topics and Home Assistant's discovery prefix are refused whatever this says."""

    ha_discovery: bool = True
    """Publish Home Assistant MQTT discovery (one device with a sensor per service)."""

    ha_discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix; its birth message is read from ``{prefix}/status``."""

    ha_device_id: str | None = None
    """Discovery device id (``homeassistant/device/{id}/config``); unset derives it from the topic prefix."""

    ha_device_name: str = "voicestack"
    """Device name shown in Home Assistant."""

    ha_rediscovery_max_delay: float = Field(default=5.0, ge=0)
    """Discovery is re-sent this many seconds at most (at random) after Home Assistant comes
    online, so many devices do not answer its birth message at the same instant."""

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
            raise ValueError(
                f"MQTT_BRIDGE_MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883, "
                f"got {parts.scheme or 'no'} scheme"
            )
        parts.port  # noqa: B018 - raises ValueError on a bad port
        return value

    @field_validator("topic_prefix", "ha_discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+#\0"):
            raise ValueError(f"topic prefix {value!r} must be non-empty, without wildcards or leading/trailing '/'")
        return value

    @field_validator("publish_allow", mode="before")
    @classmethod
    def _split_publish_allow(cls, value: Any) -> Any:
        return names_list(value)

    @field_validator("publish_allow")
    @classmethod
    def _check_publish_allow(cls, value: list[str]) -> list[str]:
        for topic_filter in value:
            try:
                aiomqtt.Wildcard(topic_filter)
            except ValueError:
                raise ValueError(
                    f"MQTT_BRIDGE_PUBLISH_ALLOW: {topic_filter!r} is not an MQTT topic filter "
                    "('+' and '#' stand alone in their level, '#' only last)"
                ) from None
            if "\0" in topic_filter:
                raise ValueError(f"MQTT_BRIDGE_PUBLISH_ALLOW: {topic_filter!r} holds NUL")
        return value

    @field_validator("services")
    @classmethod
    def _check_services(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        cleaned: dict[str, list[str]] = {}
        for name, urls in value.items():
            if not NAME_PATTERN.match(name):
                raise ValueError(f"service name {name!r} may only use letters, digits, '_' and '-'")
            if not urls:
                raise ValueError(f"service {name!r} has no URL")
            for url in urls:
                if urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError(f"service {name!r}: {url!r} is not an http(s) URL")
            cleaned[name] = [url.rstrip("/") for url in urls]
        return cleaned

    @field_validator("gateway_url")
    @classmethod
    def _check_gateway(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"MQTT_BRIDGE_GATEWAY_URL {value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("ha_device_id")
    @classmethod
    def _check_device_id(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise ValueError("MQTT_BRIDGE_HA_DEVICE_ID may only use letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _check_files(self) -> BridgeSettings:
        for path in (self.mqtt_tls_ca_file, self.mqtt_tls_cert_file, self.mqtt_tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        tls_files = (self.mqtt_tls_ca_file, self.mqtt_tls_cert_file, self.mqtt_tls_key_file)
        if any(tls_files) and urlsplit(self.mqtt_url).scheme != "mqtts":
            raise ValueError("TLS files are set but MQTT_BRIDGE_MQTT_URL is not mqtts://")
        if self.mqtt_tls_key_file is not None and self.mqtt_tls_cert_file is None:
            raise ValueError("MQTT_BRIDGE_MQTT_TLS_KEY_FILE needs MQTT_BRIDGE_MQTT_TLS_CERT_FILE")
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("MQTT_BRIDGE_RECONNECT_MAX_DELAY is below MQTT_BRIDGE_RECONNECT_MIN_DELAY")
        if self.command_audio_urls and not self.audio_url_hosts:
            raise ValueError(
                "MQTT_BRIDGE_COMMAND_AUDIO_URLS needs MQTT_BRIDGE_COMMAND_AUDIO_URL_HOSTS (where audio may come from)"
            )
        return self

    @property
    def audio_url_hosts(self) -> list[str]:
        """The hosts an ``audio_url`` may name, lower-case."""
        return [h.strip().lower() for h in self.command_audio_url_hosts.split(",") if h.strip()]
