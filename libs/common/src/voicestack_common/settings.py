"""Settings conventions every service follows.

One pydantic-settings class per service, with its own env prefix (``STT_``,
``TTS_``, ``GATEWAY_``, ``MQTT_BRIDGE_``), ``__`` between nested blocks, a
docstring under every field (docs/configuration.md is generated from them)
and ``.env`` read from the working directory. Names from the original
integration guide (``SST_*``) stay accepted through ``env_aliases``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "text"]


def env_aliases(*names: str) -> AliasChoices:
    """Accept several environment variable names for one field, first match wins.

    A field with an alias is no longer prefixed automatically, so list the
    primary (prefixed) spelling first, then the legacy ones, then the field
    name itself so ``Settings(field=...)`` keeps working in code and tests.
    """
    return AliasChoices(*names)


def names_list(value: Any) -> Any:
    """A list setting as people write it: ``a,b`` or a JSON array (``["a", "b"]``); other values as they are.

    For a ``field_validator(..., mode="before")``: pydantic then checks the list's items.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class ServiceSettings(BaseSettings):
    """Fields every service has; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        # The docstring under each field becomes its description (docs, .env.example).
        use_attribute_docstrings=True,
    )

    host: str = "127.0.0.1"
    """Interface to listen on (``0.0.0.0`` in containers)."""

    log_level: LogLevel = "INFO"
    """Log level. Audio and transcript text are only ever logged at DEBUG."""

    log_format: LogFormat = "json"
    """``json`` (one object per line, for log shippers) or ``text`` (for a terminal)."""

    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """Largest request body accepted, checked while the body streams in (413 above it)."""


def use_remote_engine(settings: Any, prefix: str, default_port: int) -> None:
    """Settle ``engine`` and ``remote_url`` of a broker's settings whose engine may be a remote server.

    A remote server named by URL, or by host and port (the integration guide's ``REMOTE_*``), is
    used: the engine becomes ``remote`` unless ``{prefix}ENGINE`` names another engine, which is
    refused at start rather than the server silently ignored.
    """
    settings.engine, settings.remote_url = _remote_engine(
        settings.engine,
        "engine" in settings.model_fields_set,
        settings.remote_url,
        settings.remote_host,
        settings.remote_port,
        prefix,
        default_port,
    )


def _remote_engine(
    engine: str,
    engine_set: bool,
    url: str | None,
    host: str | None,
    port: int | None,
    prefix: str,
    default_port: int,
) -> tuple[str, str]:
    if url and (host or port):
        raise ValueError(f"set either {prefix}REMOTE_URL or {prefix}REMOTE_HOST/{prefix}REMOTE_PORT, not both")
    named = url or (f"http://{host or 'localhost'}:{port or default_port}" if host or port else None)
    if named and engine != "remote":
        if engine_set:
            raise ValueError(
                f"a remote server is configured ({named}) but {prefix}ENGINE={engine}: "
                f"set {prefix}ENGINE=remote to use it, or unset {prefix}REMOTE_URL/HOST/PORT"
            )
        engine = "remote"
    return engine, named or f"http://localhost:{default_port}"
