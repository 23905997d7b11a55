"""Every kind of bad request gets a clear JSON error with a stable code; a full or slow broker says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from devkit.servers import serve
from tests.jsonpolicy import check_accepted, check_refusals
from tests.tts_broker.conftest import tts_settings
from tts_broker.app import create_app

pytestmark = pytest.mark.engine

# A short first sentence (its audio arrives well within the timeout, even on a busy machine),
# then far more than the timeout allows.
LONG_STORY = "Hello there, friend. " + " ".join(
    f"Here is sentence number {n} of a story that takes a while to tell."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
)


def error_of(response: Any) -> tuple[int, str]:
    """Status and error code (of an httpx or a TestClient response)."""
    return response.status_code, response.json()["error"]["code"]


def wait_idle(url: str, timeout: float = 15) -> None:
    """Until a timed-out job has stopped at its next sentence (timeouts count the wait behind it)."""
    deadline = time.monotonic() + timeout
    while "tts_workers_busy 1.0" in httpx.get(f"{url}/metrics").text and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize(("path", "field"), [("/v1/synthesize", "text"), ("/v1/audio/speech", "input")])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"TEXT": ""}, (422, "empty_text")),
        ({"TEXT": " \n\t "}, (422, "empty_text")),
        ({"TEXT": "x" * 4097}, (422, "text_too_long")),
        ({"voice": "af_nobody"}, (422, "unknown_voice")),
        ({"voice": "jf_alpha+"}, (422, "invalid_voice_blend")),
        ({"voice": "jf_alpha(0.7)+jm_kumo(heavy)"}, (422, "invalid_voice_blend")),
        ({"speed": 0.2}, (422, "invalid_speed")),
        ({"speed": 4.5}, (422, "invalid_speed")),
        ({"lang_code": "q"}, (422, "unsupported_lang_code")),
        ({"FORMAT": "mp4"}, (422, "unsupported_format")),
    ],
)
def test_field_errors(
    tts_client: TestClient, path: str, field: str, change: dict[str, object], expected: tuple[int, str]
) -> None:
    renames = {"TEXT": field, "FORMAT": "format" if field == "text" else "response_format"}
    body: dict[str, object] = {field: "Hello there.", **{renames.get(k, k): v for k, v in change.items()}}
    response = tts_client.post(path, json=body)
    assert error_of(response) == expected
    assert response.json()["error"]["message"]


def test_unknown_voice_lists_the_valid_ones(tts_client: TestClient) -> None:
    error = tts_client.post("/v1/synthesize", json={"text": "Hi there.", "voice": "af_nobody"}).json()["error"]
    voices = error["details"]["voices"]
    assert len(voices) == 54
    assert voices == sorted(voices)
    assert {"af_heart", "bf_emma", "jf_alpha"} <= set(voices)
    assert "af_alloy, af_aoede" in error["message"]


def test_openai_only_formats_on_the_openai_route(tts_client: TestClient) -> None:
    response = tts_client.post("/v1/audio/speech", json={"input": "Hi there.", "response_format": "ogg"})
    assert error_of(response) == (422, "unsupported_format")
    response = tts_client.post("/v1/audio/speech", json={"input": "Hi there.", "stream_format": "websocket"})
    assert error_of(response) == (422, "unsupported_stream_format")


def test_non_utf8_body(tts_client: TestClient) -> None:
    body = '{"text": "Café au lait."}'.encode("latin-1")
    response = tts_client.post("/v1/synthesize", content=body, headers={"content-type": "application/json"})
    assert error_of(response) == (415, "invalid_encoding")
    assert "UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [
        (b"", {"content-type": "application/json"}, (400, "empty_body")),
        (b'{"text": "Hi"', {"content-type": "application/json"}, (400, "invalid_json")),
        (b'["Hi"]', {"content-type": "application/json"}, (422, "invalid_request")),
        (b"text=Hi", {"content-type": "application/x-www-form-urlencoded"}, (415, "unsupported_media_type")),
        (b'{"voice": "jf_alpha"}', {"content-type": "application/json"}, (422, "invalid_request")),
        (b'{"text": 42}', {"content-type": "application/json"}, (422, "invalid_request")),
    ],
)
def test_malformed_bodies(
    tts_client: TestClient, content: bytes, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    assert error_of(tts_client.post("/v1/synthesize", content=content, headers=headers)) == expected


@pytest.mark.parametrize(("path", "field"), [("/v1/synthesize", "text"), ("/v1/audio/speech", "input")])
def test_the_json_body_policy(tts_client: TestClient, path: str, field: str) -> None:
    def post(content: bytes, headers: dict[str, str]) -> Any:
        return tts_client.post(path, content=content, headers=headers)

    check_refusals(post, "invalid_request")
    check_accepted(post, lambda: {field: "Hi.", "format" if field == "text" else "response_format": "pcm"}, 200)


def test_a_body_without_content_type_is_read_as_json(tts_client: TestClient) -> None:
    response = tts_client.post("/v1/synthesize", content=b'{"text": "Hi there, friend.", "format": "pcm"}')
    assert response.status_code == 200


def test_oversized_body(tts_client: TestClient) -> None:
    response = tts_client.post("/v1/synthesize", json={"text": "x" * (2 << 20)})
    assert error_of(response) == (413, "payload_too_large")


@pytest.fixture(scope="module")
def tight_server(model_cache: Path) -> Iterator[str]:
    """One worker, no queue, a 4 s timeout, no cache."""
    settings = tts_settings(
        model_cache, workers=1, max_queue=0, inference_timeout=4.0, retry_after=3, cache_max_entries=0
    )
    with serve(create_app(settings)) as url:
        yield url


def test_full_queue_is_a_503_with_retry_after_and_slow_work_a_504(tight_server: str) -> None:
    results: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: results.append(
            httpx.post(f"{tight_server}/v1/synthesize", json={"text": LONG_STORY}, timeout=60)
        )
    )
    slow.start()
    time.sleep(0.5)
    busy = httpx.post(f"{tight_server}/v1/synthesize", json={"text": "Hi there, friend."}, timeout=60)
    assert error_of(busy) == (503, "saturated")
    assert busy.headers["retry-after"] == "3"
    slow.join()
    assert error_of(results[0]) == (504, "inference_timeout")
    wait_idle(tight_server)
    ok = httpx.post(f"{tight_server}/v1/synthesize", json={"text": "Hi there, friend."}, timeout=60)
    assert ok.status_code == 200


def test_a_stream_that_runs_out_of_time_is_cut_off(tight_server: str) -> None:
    wait_idle(tight_server)
    received = b""
    with (  # noqa: PT012
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", f"{tight_server}/v1/audio/speech", timeout=60, json={"input": LONG_STORY, "response_format": "pcm"}
        ) as response,
    ):
        assert response.status_code == 200
        for data in response.iter_raw():
            received += data
    assert received  # the first sentences arrived before the timeout


def test_sse_reports_a_timeout_in_band(tight_server: str) -> None:
    wait_idle(tight_server)
    with httpx.stream(
        "POST",
        f"{tight_server}/v1/audio/speech",
        timeout=60,
        json={"input": LONG_STORY, "response_format": "pcm", "stream_format": "sse"},
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"speech.audio.delta"' in lines[0]
    assert '"type": "error"' in lines[-1]
    assert '"inference_timeout"' in lines[-1]
