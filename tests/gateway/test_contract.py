"""The gateway in front of the real brokers and engines: the integration guide's shapes, end to end."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from devkit.speech import words
from tests.gateway.conftest import SHORT
from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=120) as client:
        yield client


def test_transcribe_multipart_has_the_guide_shape(http: httpx.Client, sentence: tuple[str, Pcm]) -> None:
    text, pcm = sentence
    response = http.post(
        "/api/voice/transcribe",
        files={"file": ("audio.wav", encode_audio(pcm, "wav"))},
        data={"language": "en"},
        headers={"X-Request-ID": "guide-transcribe-1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"text", "language", "confidence", "duration_seconds", "model"}
    assert words(body["text"]) == words(text)
    assert body["language"] == "en"
    assert body["duration_seconds"] == pytest.approx(pcm.duration, abs=0.05)
    assert body["model"] == "tiny.en"
    assert response.headers["X-Request-ID"] == "guide-transcribe-1"


def test_transcribe_base64_json_as_the_react_example_sends_it(http: httpx.Client, sentence: tuple[str, Pcm]) -> None:
    """MediaRecorder's WebM/Opus, base64 in a JSON string body that fetch labels text/plain."""
    text, pcm = sentence
    webm = base64.b64encode(encode_audio(pcm, "webm")).decode()
    response = http.post(
        "/api/voice/transcribe",
        content=json.dumps({"audio_base64": webm, "language": "en"}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert words(response.json()["text"]) == words(text)


def test_synthesize_then_transcribe_round_trip(http: httpx.Client) -> None:
    response = http.post(
        "/api/voice/synthesize", json={"text": SHORT, "voice": "jm_kumo", "lang_code": "a", "speed": 1.0}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"audio_base64", "audio_sample_rate", "audio_duration_seconds", "voice", "speed"}
    assert body["voice"] == "jm_kumo"
    assert body["audio_sample_rate"] == 24_000
    wav = base64.b64decode(body["audio_base64"])
    assert wav[:4] == b"RIFF"
    assert decode_audio(wav, 24_000).duration == pytest.approx(body["audio_duration_seconds"], abs=0.05)
    heard = http.post("/api/voice/transcribe", files={"file": ("speech.wav", wav)}, data={"language": "en"})
    assert words(heard.json()["text"]) == words(SHORT)


def test_the_guides_voice_is_spoken_or_falls_back_to_a_bundled_one(http: httpx.Client, tts_url: str) -> None:
    offered = httpx.get(f"{tts_url}/v1/voices").json()["voices"]
    response = http.post(
        "/api/voice/synthesize",
        json={"text": "Hello, this is a test", "voice": "af_heart", "lang_code": "a", "speed": 1.0},
    )
    assert response.status_code == 200, response.text
    # all 54 Kokoro voices (the kokoro sdist): af_heart itself; the five bundled ones only: jf_alpha
    assert response.json()["voice"] == ("af_heart" if "af_heart" in offered else "jf_alpha")


def test_audio_stream_passes_chunks_through_as_they_are_made(http: httpx.Client) -> None:
    text = "The first sentence is short. The second one follows it. A third one ends the stream."
    arrivals: list[float] = []
    data = bytearray()
    started = time.perf_counter()
    with http.stream("POST", "/api/voice/audio-stream", json={"text": text, "voice": "jf_alpha"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert "content-length" not in response.headers  # streamed, not buffered whole
        for chunk in response.iter_raw():
            arrivals.append(time.perf_counter() - started)
            data += chunk
    assert data[:4] == b"RIFF"
    # The broker says how to count the stream (bytes per second after the 44-byte header), so nobody decodes it.
    assert (response.headers["X-Audio-Byte-Rate"], response.headers["X-Audio-Data-Offset"]) == ("48000", "44")
    assert len(arrivals) >= 2
    assert arrivals[0] < arrivals[-1] - 0.3  # the first sentence arrived before the last was made
    assert decode_audio(bytes(data), 24_000).duration > 3


def test_audio_stream_in_another_format(http: httpx.Client) -> None:
    response = http.post("/api/voice/audio-stream", json={"text": "Good morning.", "format": "mp3"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert decode_audio(response.content, 24_000).duration > 0.3


def test_batch_results_come_back_in_order(http: httpx.Client) -> None:
    voices = ["jf_alpha", "jm_kumo", "jf_nezumi"]
    items = [{"text": f"Item {n}.", "voice": voice} for n, voice in enumerate(voices)]
    response = http.post("/api/voice/synthesize-batch", json=items)
    assert response.status_code == 200, response.text
    assert [r["voice"] for r in response.json()] == voices
    assert all(r["audio_duration_seconds"] > 0 for r in response.json())


def test_voices_and_health(http: httpx.Client, stt_url: str, tts_url: str) -> None:
    voices = http.get("/api/voice/voices").json()
    assert voices == httpx.get(f"{tts_url}/v1/voices").json()  # the broker's answer, details and all
    assert voices["service"] == "Kokoro TTS"
    assert {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"} <= set(voices["voices"])
    assert voices["default_voice"] in voices["voices"]
    details = {d["id"]: d for d in voices["details"]}
    assert [d["id"] for d in voices["details"]] == voices["voices"]
    assert details["jf_alpha"] | {"reason": None} == {
        "id": "jf_alpha",
        "lang_code": "j",
        "language": "ja-JP",
        "language_name": "Japanese",
        "gender": "female",
        "available": details["jf_alpha"]["available"],
        "reason": None,
    }
    assert details["jm_kumo"]["gender"] == "male"
    health = http.get("/api/voice/health").json()
    assert {k: health[k] for k in ("status", "sst_service", "tts_service", "sst_healthy", "tts_healthy")} == {
        "status": "healthy",
        "sst_service": stt_url,
        "tts_service": tts_url,
        "sst_healthy": True,
        "tts_healthy": True,
    }
    assert health["sst_latency_ms"] > 0
    assert [r["url"] for r in health["tts_replicas"]] == [tts_url]
    assert http.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": ""}, "empty_text"),
        ({"text": "Hi.", "speed": 9}, "invalid_speed"),
        ({"text": "Hi.", "format": "mp4"}, "unsupported_format"),
    ],
)
def test_field_checks_come_from_the_broker_that_owns_them(
    http: httpx.Client, body: dict[str, object], code: str
) -> None:
    """One contract: the gateway sends the TTS broker's own request model, and passes its codes on."""
    for path in ("/api/voice/synthesize", "/api/voice/audio-stream"):
        response = http.post(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), path
