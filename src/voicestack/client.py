"""The CLI's client side: transcribe, synthesize, voices and health against a running gateway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx

from voicestack_common.upstream import error_parts

# Output formats by file extension; OpenAI's "opus" is Ogg/Opus.
SPEECH_FORMATS = {
    ".mp3": "mp3",
    ".wav": "wav",
    ".flac": "flac",
    ".opus": "opus",
    ".ogg": "opus",
    ".aac": "aac",
    ".pcm": "pcm",
}

Progress = Callable[[int, int | None], None]


class CommandFailed(Exception):
    """One line for the user: what failed and, when the server said, its error code."""


@dataclass(frozen=True, slots=True)
class GatewayTarget:
    """Where the gateway is and how to authenticate."""

    url: str
    api_key: str | None = None
    timeout: float = 300.0

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(
            base_url=self.url.rstrip("/"), headers=headers, timeout=httpx.Timeout(self.timeout, connect=5.0)
        )


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    code, message, _ = error_parts(response.content, response.status_code)
    raise CommandFailed(f"the gateway answered {response.status_code} ({code}: {message})")


def _call(gateway: GatewayTarget, fn: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
    try:
        with gateway.client() as http:
            return _check(fn(http))
    except httpx.ConnectError:
        raise CommandFailed(
            f"cannot reach the gateway at {gateway.url}: is the stack up? (start it with `voicestack up`)"
        ) from None
    except httpx.TimeoutException:
        raise CommandFailed(f"the gateway at {gateway.url} did not answer in {gateway.timeout:g} s") from None


class _ProgressFile:
    """A file that reports how much of it httpx has read (i.e. uploaded) so far."""

    def __init__(self, handle: BinaryIO, total: int, progress: Progress | None) -> None:
        self._handle = handle
        self._total = total
        self._progress = progress
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._sent += len(data)
        if self._progress is not None:
            self._progress(self._sent, self._total)
        return data

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell: httpx sizes the upload with them
        return getattr(self._handle, name)


def transcribe(
    gateway: GatewayTarget, path: Path, *, language: str | None, fmt: str, progress: Progress | None = None
) -> str | dict[str, Any]:
    """The transcript of a local audio file: the guide's JSON, or text / SRT / WebVTT."""
    if not path.is_file():
        raise CommandFailed(f"no such file: {path}")
    fields = {"language": language} if language else {}
    with path.open("rb") as handle:
        upload = cast(BinaryIO, _ProgressFile(handle, path.stat().st_size, progress))
        files = {"file": (path.name, upload)}
        if fmt == "json":
            response = _call(gateway, lambda http: http.post("/api/voice/transcribe", files=files, data=fields))
            body: dict[str, Any] = response.json()
            return body
        data = {**fields, "model": "whisper-1", "response_format": fmt}
        return _call(gateway, lambda http: http.post("/v1/audio/transcriptions", files=files, data=data)).text


def synthesize(
    gateway: GatewayTarget,
    text: str,
    output: Path,
    *,
    voice: str | None,
    speed: float,
    progress: Progress | None = None,
) -> int:
    """Stream speech for ``text`` into ``output`` (format from its extension); returns bytes written."""
    fmt = SPEECH_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise CommandFailed(
            f"cannot tell the audio format from {output.name!r}: use one of {', '.join(sorted(SPEECH_FORMATS))}"
        )
    body: dict[str, Any] = {"model": "kokoro", "input": text, "response_format": fmt, "speed": speed}
    if voice:
        body["voice"] = voice
    written = 0
    tmp = output.with_name(f".{output.name}.part")
    try:
        with gateway.client() as http, http.stream("POST", "/v1/audio/speech", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _check(response)
            with tmp.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written, None)
        tmp.replace(output)
    except httpx.ConnectError:
        raise CommandFailed(
            f"cannot reach the gateway at {gateway.url}: is the stack up? (start it with `voicestack up`)"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return written


def voices(gateway: GatewayTarget) -> dict[str, Any]:
    """``GET /api/voice/voices``."""
    body: dict[str, Any] = _call(gateway, lambda http: http.get("/api/voice/voices")).json()
    return body


def models(gateway: GatewayTarget) -> list[dict[str, Any]]:
    """``GET /v1/models``: every model the stack offers, with ``kind``, ``loaded`` and ``default`` where known."""
    body = _call(gateway, lambda http: http.get("/v1/models")).json()
    data = body.get("data") if isinstance(body, dict) else None
    return [card for card in data if isinstance(card, dict)] if isinstance(data, list) else []


def health(gateway: GatewayTarget) -> dict[str, Any]:
    """``GET /api/voice/health`` (answered with 503 and the same body when something is down)."""
    try:
        with gateway.client() as http:
            response = http.get("/api/voice/health")
    except httpx.TransportError:
        raise CommandFailed(f"cannot reach the gateway at {gateway.url}: is the stack up?") from None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        _check(response)
        raise CommandFailed("the gateway sent a health answer that is not JSON") from None
    if "status" not in body:
        _check(response)
    return body


def stream_transcribe(
    gateway: GatewayTarget,
    path: Path,
    *,
    speed: float,
    language: str | None,
    on_event: Callable[[dict[str, Any]], None],
) -> None:
    """Stream a file to ``/api/voice/ws/transcribe`` as 100 ms PCM16 frames, ``speed`` times real time,
    and hand every event to ``on_event`` until ``closed``."""
    import json
    import threading
    import time

    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    from voicestack_common.audio import AudioError, decode_audio

    try:
        pcm = decode_audio(path.read_bytes())
    except OSError as exc:
        raise CommandFailed(f"cannot read {path}: {exc.strerror}") from None
    except AudioError as exc:
        raise CommandFailed(f"{exc.code}: {exc.message}") from None
    data = pcm.to_pcm16()
    frame = pcm.sample_rate // 10 * 2
    base = gateway.url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    headers = {"Authorization": f"Bearer {gateway.api_key}"} if gateway.api_key else None
    start: dict[str, Any] = {"type": "start", "format": "pcm16", "sample_rate": pcm.sample_rate}
    if language:
        start["language"] = language
    try:
        socket = connect(
            base + "/api/voice/ws/transcribe", additional_headers=headers, open_timeout=10, ping_interval=None
        )
    except (OSError, InvalidStatus, TimeoutError) as exc:
        raise CommandFailed(f"cannot open a live session at {gateway.url}: {exc}") from None
    with socket:
        socket.send(json.dumps(start))

        def send() -> None:
            began = time.monotonic()
            try:
                for index, offset in enumerate(range(0, len(data), frame)):
                    socket.send(data[offset : offset + frame])
                    delay = began + (index + 1) * 0.1 / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                socket.send(json.dumps({"type": "stop"}))
            except ConnectionClosed:
                pass

        sender = threading.Thread(target=send, name="stream-sender", daemon=True)
        sender.start()
        try:
            for message in socket:
                event = json.loads(message)
                on_event(event)
                if event.get("type") == "closed":
                    break
        except ConnectionClosed:
            pass
        sender.join(timeout=5)
