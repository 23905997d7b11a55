"""A running Kokoro-FastAPI server (its OpenAI-compatible ``/v1/audio/speech``) as the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import httpx

from tts_broker.engines.base import SpeechRequest
from voicestack_common.audio import Pcm, pcm16_to_pcm
from voicestack_common.errors import UpstreamError
from voicestack_common.upstream import RemoteServer

SAMPLE_RATE = 24_000  # Kokoro-FastAPI's pcm is 24 kHz mono 16-bit little-endian
# A remote server's voices can change (voice packs added): the list is re-read this often.
VOICES_TTL_S = 60.0


def parse_voice_list(body: Any) -> tuple[str, ...]:
    """``{"voices": [...]}`` of names, or (Kokoro-FastAPI 0.3+) of ``{"id", "name"}`` objects."""
    items = body.get("voices") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise UpstreamError("the Kokoro server's voice list has no 'voices' array", code="upstream_bad_response")
    names = [item.get("id") or item.get("name") if isinstance(item, dict) else item for item in items]
    return tuple(sorted({str(name) for name in names if name}))


class RemoteKokoroEngine:
    """Streams raw PCM from Kokoro-FastAPI and hands it on a chunk at a time."""

    backend = "kokoro-fastapi"
    sample_rate = SAMPLE_RATE
    static_voices = False
    # Kokoro-FastAPI has Kokoro's own text front ends (misaki): every language is its to speak.
    unavailable_languages: Mapping[str, str] = MappingProxyType({})

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        model: str = "kokoro",
        model_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._server = RemoteServer(
            "Kokoro server", url, timeout=timeout, connect_timeout=connect_timeout, transport=transport
        )
        self.url = self._server.url
        self.remote_model = model
        self.model = model_id or model
        self._voices: tuple[str, ...] = ()
        self._voices_at = 0.0
        self._lock = threading.Lock()

    def load(self) -> None:
        """Open a pooled client; the server itself is checked by ``/readyz``."""
        self._server.open()

    def probe(self) -> bool:
        """Whether the server answers its health check."""
        return self._server.probe("/health")

    def list_voices(self) -> tuple[str, ...]:
        """The server's voices, re-read at most every ``VOICES_TTL_S`` seconds."""
        with self._lock:
            if self._voices and time.monotonic() - self._voices_at < VOICES_TTL_S:
                return self._voices
        response = self._server.request("GET", "/v1/audio/voices")
        _raise_for_status(response)
        try:
            voices = parse_voice_list(response.json())
        except ValueError as exc:
            raise UpstreamError("the Kokoro server sent a non-JSON voice list", code="upstream_bad_response") from exc
        with self._lock:
            self._voices, self._voices_at = voices, time.monotonic()
        return voices

    def stream(self, request: SpeechRequest, cancel: threading.Event) -> Iterator[Pcm]:
        """One streamed request; the server splits the text into sentences itself."""
        body = {
            "model": self.remote_model,
            "input": request.text,
            "voice": request.voice.spec,
            "response_format": "pcm",
            "speed": request.speed,
            "stream": True,
            "lang_code": request.lang_code,
        }
        with self._server.stream("POST", "/v1/audio/speech", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for_status(response)
            carry = b""
            for data in response.iter_bytes():
                if cancel.is_set():
                    return  # leaving the block closes the connection: the server stops too
                data = carry + data
                usable = len(data) - len(data) % 2
                carry = data[usable:]
                if usable:
                    yield pcm16_to_pcm(data[:usable], SAMPLE_RATE)

    def close(self) -> None:
        """Close the connection pool."""
        self._server.close()


def _raise_for_status(response: httpx.Response) -> None:
    """Kokoro-FastAPI's errors as ours: ``{"detail": {"error", "message"}}`` or plain text."""
    if response.status_code < 400:
        return
    message = response.text[:300]
    try:
        detail = response.json().get("detail")
        if isinstance(detail, dict):
            message = str(detail.get("message") or detail)
        elif detail:
            message = str(detail)
    except (ValueError, AttributeError):
        pass
    raise UpstreamError(f"Kokoro server answered {response.status_code}: {message}", code="upstream_error")
