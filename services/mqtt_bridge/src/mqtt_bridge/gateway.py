"""The gateway as seen by MQTT commands: ``/api/voice/synthesize`` and ``/api/voice/transcribe``."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

import httpx

from mqtt_bridge.schemas import SynthesizeCommand, TranscribeCommand
from voicestack_common.errors import (
    InvalidRequest,
    PayloadTooLarge,
    UpstreamError,
)
from voicestack_common.logging import REQUEST_ID_HEADER
from voicestack_common.upstream import answered_error, upstream_errors


class GatewayClient:
    """Runs commands through the gateway's REST API (the integration guide's shapes)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        timeout: float,
        max_audio_bytes: int,
        allow_urls: bool,
        url_hosts: list[str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.http = http
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url
        self.timeout = timeout
        self.max_audio_bytes = max_audio_bytes
        self.allow_urls = allow_urls
        self.url_hosts = url_hosts or []

    async def synthesize(self, command: SynthesizeCommand, request_id: str) -> Any:
        """``{audio_base64, audio_sample_rate, audio_duration_seconds, voice, speed}``."""
        return await self._call("synthesize", request_id, json=command.gateway_body())

    async def transcribe(self, command: TranscribeCommand, request_id: str) -> Any:
        """``{text, language, confidence, duration_seconds, model}``."""
        audio = await self._audio(command)
        form = {"language": command.language} if command.language else {}
        return await self._call(
            "transcribe", request_id, data=form, files={"file": (command.filename, audio, "application/octet-stream")}
        )

    async def _audio(self, command: TranscribeCommand) -> bytes:
        if command.audio_base64 is not None:
            # Its size is bounded already: the whole command payload is.
            try:
                return base64.b64decode(command.audio_base64, validate=True)
            except binascii.Error:
                raise InvalidRequest("audio_base64 is not valid base64", code="invalid_command") from None
        if not self.allow_urls:
            raise InvalidRequest("audio_url is disabled on this bridge; send audio_base64", code="audio_url_disabled")
        url = str(command.audio_url)
        if not url_host_allowed(url, self.url_hosts):
            raise InvalidRequest(
                "audio_url names a host this bridge does not fetch from (MQTT_BRIDGE_COMMAND_AUDIO_URL_HOSTS)",
                code="audio_url_forbidden",
            )
        return await self._fetch(url)

    async def _fetch(self, url: str) -> bytes:
        with upstream_errors(
            "fetching audio_url", unreachable_code="audio_fetch_failed", timeout_code="audio_fetch_failed"
        ):
            # No redirects: one could lead from an allowed host to any other.
            async with self.http.stream("GET", url, timeout=self.timeout, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise UpstreamError(
                        f"fetching audio_url answered {response.status_code}", code="audio_fetch_failed"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_audio_bytes:
                    raise PayloadTooLarge(
                        f"audio_url is larger than {self.max_audio_bytes} bytes", code="audio_too_large"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_audio_bytes:
                        raise PayloadTooLarge(
                            f"audio_url is larger than {self.max_audio_bytes} bytes", code="audio_too_large"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)

    async def _call(self, verb: str, request_id: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/api/voice/{verb}"
        with upstream_errors(f"the gateway's {verb}", unreachable_code="gateway_unreachable"):
            response = await self.http.post(
                url, headers={REQUEST_ID_HEADER: request_id, **self._auth}, timeout=self.timeout, **kwargs
            )
        if response.status_code >= 400:
            raise answered_error(response.status_code, response.content, response.headers)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError("the gateway answered with something that is not JSON") from None


def url_host_allowed(url: str, allowed: list[str]) -> bool:
    """Whether ``url`` is http(s) on an allowed host: ``*``, ``host``, ``host:port`` or ``*.domain``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    for entry in allowed:
        if entry == "*" or entry in (host, f"{host}:{port}"):
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
    return False
