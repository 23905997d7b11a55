"""The integration guide's endpoints on the real engine: synthesize, voices, health, metrics, the cache."""

from __future__ import annotations

import base64
import re
import struct

import pytest
from fastapi.testclient import TestClient

from devkit.speech import words
from tests.tts_broker.conftest import PHRASE, Listener
from voicestack_common.audio import decode_audio

pytestmark = pytest.mark.engine


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of the broker's /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(","))) == wanted:
            return float(match[3])
    return 0.0


def test_health_and_readiness_report_the_default_voice(tts_client: TestClient) -> None:
    assert tts_client.get("/healthz").json()["status"] == "ok"
    ready = tts_client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["engine"] == "kokoro-onnx"
    assert checks["model"] == "kokoro-82m-int8"
    assert checks["voices"] == 54
    # af_heart (the guide's default) is among Kokoro's voices, assembled from the kokoro sdist.
    assert (checks["configured_default_voice"], checks["default_voice"], checks["default_voice_fallback"]) == (
        "af_heart",
        "af_heart",
        False,
    )


def test_voices_in_the_guide_s_shape_and_kokoro_fastapi_s(tts_client: TestClient) -> None:
    guide = tts_client.get("/v1/voices").json()
    assert (guide["default_voice"], guide["service"], len(guide["voices"])) == ("af_heart", "Kokoro TTS", 54)
    assert [d["id"] for d in guide["details"]] == guide["voices"]
    assert tts_client.get("/v1/audio/voices").json()["voices"][0] == {
        "id": "af_alloy",
        "name": "af_alloy",
        "lang_code": "a",
        "language": "en-US",
        "gender": "female",
    }
    assert tts_client.get("/v1/audio/voices", params={"legacy": "true"}).json() == {"voices": guide["voices"]}
    ids = [m["id"] for m in tts_client.get("/v1/models").json()["data"]]
    assert ids[0] == "kokoro-82m-int8"
    assert "tts-1" in ids


def test_synthesize_round_trip(tts_client: TestClient, listener: Listener) -> None:
    response = tts_client.post("/v1/synthesize", json={"text": PHRASE, "lang_code": "a", "speed": 1.0})
    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["audio_base64", "audio_duration_seconds", "audio_sample_rate", "speed", "voice"]
    audio = base64.b64decode(body["audio_base64"])
    assert audio[:4] == b"RIFF"
    assert audio[8:16] == b"WAVEfmt "
    assert struct.unpack("<I", audio[40:44])[0] == len(audio) - 44  # an exact length, not a streaming header
    assert (body["audio_sample_rate"], body["voice"], body["speed"]) == (24_000, "af_heart", 1.0)
    assert decode_audio(audio, 24_000).duration == pytest.approx(body["audio_duration_seconds"], abs=0.01)
    assert float(response.headers["X-Audio-Seconds"]) == pytest.approx(body["audio_duration_seconds"], abs=0.001)
    assert listener.words(audio) == words(PHRASE)


def test_identical_requests_come_from_the_cache(tts_client: TestClient) -> None:
    request = {"text": "Good morning to you.", "voice": "am_adam"}
    hits = metric(tts_client, "tts_cache_lookups_total", result="hit")
    first = tts_client.post("/v1/synthesize", json=request).json()
    second = tts_client.post("/v1/synthesize", json=request).json()
    assert second == first
    assert metric(tts_client, "tts_cache_lookups_total", result="hit") == hits + 1
    assert metric(tts_client, "tts_syntheses_total", engine="kokoro-onnx", outcome="cached") >= 1
    # Another format is another result.
    other = tts_client.post("/v1/synthesize", json={**request, "format": "mp3"}).json()
    assert other["audio_base64"] != first["audio_base64"]
    assert metric(tts_client, "tts_cache_lookups_total", result="hit") == hits + 1


def test_a_weighted_blend_speaks_and_is_echoed_normalised(tts_client: TestClient, listener: Listener) -> None:
    body = tts_client.post("/v1/synthesize", json={"text": PHRASE, "voice": "af_bella(3)+am_adam(1)"}).json()
    assert body["voice"] == "af_bella(0.75)+am_adam(0.25)"
    assert listener.words(base64.b64decode(body["audio_base64"])) == words(PHRASE)


def test_speed_and_british_english(tts_client: TestClient, listener: Listener) -> None:
    normal = tts_client.post("/v1/synthesize", json={"text": "Thank you very much.", "lang_code": "b"}).json()
    fast = tts_client.post(
        "/v1/synthesize", json={"text": "Thank you very much.", "lang_code": "en-gb", "speed": 1.6}
    ).json()
    assert fast["speed"] == 1.6
    assert fast["audio_duration_seconds"] < 0.8 * normal["audio_duration_seconds"]
    assert listener.words(base64.b64decode(normal["audio_base64"])) == words("Thank you very much.")


@pytest.mark.parametrize(("fmt", "rate"), [("ogg", 48_000), ("webm", 48_000), ("m4a", 24_000)])
def test_other_containers_round_trip(tts_client: TestClient, listener: Listener, fmt: str, rate: int) -> None:
    body = tts_client.post("/v1/synthesize", json={"text": "Thank you very much.", "format": fmt}).json()
    assert body["audio_sample_rate"] == rate
    audio = base64.b64decode(body["audio_base64"])
    assert decode_audio(audio, 24_000).duration == pytest.approx(body["audio_duration_seconds"], abs=0.1)
    assert listener.words(audio) == words("Thank you very much.")


def test_openapi_documents_every_route(tts_client: TestClient) -> None:
    paths = tts_client.get("/openapi.json").json()["paths"]
    for path in ("/v1/synthesize", "/v1/audio/speech", "/v1/voices", "/v1/audio/voices", "/v1/models"):
        assert path in paths
    speech = paths["/v1/audio/speech"]["post"]
    assert "audio/mpeg" in speech["responses"]["200"]["content"]


def test_metrics_cover_characters_audio_speed_and_first_audio(tts_client: TestClient) -> None:
    tts_client.post("/v1/synthesize", json={"text": "Metrics please."})
    text = tts_client.get("/metrics").text
    for name in (
        "tts_characters_total",
        "tts_audio_seconds_total",
        "tts_real_time_factor_count",
        "tts_time_to_first_audio_seconds_count",
        "tts_cache_lookups_total",
        "tts_cache_entries",
        "tts_queue_depth",
        "tts_workers_busy",
        "tts_http_requests_total",
    ):
        assert f"\n{name}" in text, name
    assert metric(tts_client, "tts_characters_total", engine="kokoro-onnx") >= len("Metrics please.")
    assert metric(tts_client, "tts_audio_seconds_total", engine="kokoro-onnx") > 0
