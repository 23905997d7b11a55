"""Settings conventions every service follows.

One pydantic-settings class per service, with its own env prefix (``STT_``,
``TTS_``, ``GATEWAY_``, ``MQTT_BRIDGE_``), ``__`` between nested blocks, a
docstring under every field (docs/configuration.md is generated from them)
and ``.env`` read from the working directory. Names from the original
integration guide (``SST_*``) stay accepted through ``env_aliases``.
"""

from __future__ import annotations

from typing import Literal

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
