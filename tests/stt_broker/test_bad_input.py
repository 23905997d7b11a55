"""Every kind of bad request gets a clear JSON error with a stable code."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from devkit.servers import serve
from stt_broker.app import create_app
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio, wav_header

pytestmark = pytest.mark.engine


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_empty_body(stt_client: TestClient) -> None:
    assert error_of(stt_client.post("/v1/transcribe")) == (400, "empty_body")


def test_multipart_without_a_file(stt_client: TestClient) -> None:
    assert error_of(stt_client.post("/v1/transcribe", data={"language": "en"})) == (400, "empty_body")


def test_empty_file(stt_client: TestClient) -> None:
    response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", b"")})
    assert error_of(response) == (400, "empty_audio")


def test_not_audio(stt_client: TestClient) -> None:
    response = stt_client.post("/v1/transcribe", files={"file": ("notes.txt", b"meeting notes\n" * 50)})
    assert error_of(response) == (415, "unsupported_audio")
    assert "not a recognised audio file" in response.json()["error"]["message"]


def test_truncated_file(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", wav[: len(wav) // 3])})
    assert error_of(response) == (400, "truncated_audio")


def test_unsupported_codec(stt_client: TestClient) -> None:
    header = bytearray(wav_header(16_000, 3200))
    header[20:22] = struct.pack("<H", 0x1234)  # a WAVE format tag no decoder knows
    response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", bytes(header) + bytes(3200))})
    assert error_of(response) == (415, "unsupported_codec")


def test_json_instead_of_multipart(stt_client: TestClient) -> None:
    response = stt_client.post("/v1/transcribe", json={"audio": "..."})
    assert error_of(response) == (415, "unsupported_media_type")


def test_unknown_language(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"language": "xx"})
    assert error_of(response) == (422, "unsupported_language")
    # tiny.en cannot do French: say so instead of transcribing English.
    response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"language": "fr"})
    assert error_of(response) == (422, "unsupported_language")
    assert "English-only" in response.json()["error"]["message"]


def test_language_aliases_are_accepted(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    for language in ("en", "EN", "en-US", "english", "auto"):
        response = stt_client.post("/v1/transcribe", files={"file": ("a.wav", wav)}, data={"language": language})
        assert response.status_code == 200, language


def test_invalid_response_format(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    response = stt_client.post(
        "/v1/transcribe", files={"file": ("a.wav", encode_audio(sentence[1], "wav"))}, data={"response_format": "docx"}
    )
    assert error_of(response) == (422, "invalid_response_format")


def test_temperature_out_of_range(stt_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    response = stt_client.post(
        "/v1/transcribe", files={"file": ("a.wav", encode_audio(sentence[1], "wav"))}, data={"temperature": "3"}
    )
    assert error_of(response) == (422, "invalid_request")


@pytest.fixture(scope="module")
def strict_client(model_cache: Path) -> Iterator[TestClient]:
    """A broker with small limits: 2 s of audio, 64 kB uploads."""
    settings = stt_settings(model_cache, max_audio_seconds=2.0, max_upload_bytes=64_000)
    with TestClient(create_app(settings)) as client:
        yield client


def test_audio_longer_than_the_limit(strict_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    mp3 = encode_audio(sentence[1], "mp3")  # small file, ~3 s of audio
    assert len(mp3) < 64_000
    response = strict_client.post("/v1/transcribe", files={"file": ("a.mp3", mp3)})
    assert error_of(response) == (422, "audio_too_long")


def test_upload_larger_than_the_limit(strict_client: TestClient, sentence: tuple[str, Pcm]) -> None:
    wav = encode_audio(sentence[1], "wav")
    assert len(wav) > 64_000
    response = strict_client.post("/v1/transcribe", files={"file": ("a.wav", wav)})
    assert error_of(response) == (413, "payload_too_large")


def test_upload_limit_applies_while_streaming(model_cache: Path) -> None:
    """A chunked upload with no Content-Length is cut off at the limit, not buffered first."""
    settings = stt_settings(model_cache, max_upload_bytes=64_000)
    with serve(create_app(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
            )
            head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            sent = 0
            chunk = bytes(16_384)
            while sent < 64_000_000 and not select.select([sock], [], [], 0)[0]:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
            answer = sock.recv(65_536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"payload_too_large"' in answer
    # Refused long before 64 MB were sent; what got through sat in loopback socket buffers.
    assert sent < 16_000_000


def test_queue_limit_gives_503_and_health_still_answers(model_cache: Path, sentence: tuple[str, Pcm]) -> None:
    long_speech = Pcm(np.tile(sentence[1].samples, 6), sentence[1].sample_rate)  # ~17 s
    wav = encode_audio(long_speech, "wav")
    settings = stt_settings(model_cache, workers=1, max_queue=0, retry_after=4)
    with serve(create_app(settings)) as url:
        first: list[httpx.Response] = []
        busy = threading.Thread(
            target=lambda: first.append(httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}, timeout=120))
        )
        busy.start()
        deadline = time.monotonic() + 30
        while "stt_workers_busy 1.0" not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # The only context is decoding: health and metrics answer, a second request is refused.
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        refused = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", wav)}, timeout=30)
        busy.join(120)
    assert error_of(refused) == (503, "saturated")
    assert refused.headers["retry-after"] == "4"
    assert first[0].status_code == 200


def test_inference_timeout_gives_504(model_cache: Path, sentence: tuple[str, Pcm]) -> None:
    long_speech = Pcm(np.tile(sentence[1].samples, 6), sentence[1].sample_rate)
    settings = stt_settings(model_cache, inference_timeout=0.05)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/transcribe", files={"file": ("a.wav", encode_audio(long_speech, "wav"))})
        assert error_of(response) == (504, "inference_timeout")
        # The aborted decode frees the context for the next request.
        assert client.get("/readyz").status_code == 200
