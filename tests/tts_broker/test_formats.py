"""Every OpenAI output format, round trip: text -> broker -> Whisper tiny.en gives the words back."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from devkit.speech import words
from tests.tts_broker.conftest import PHRASE, Listener
from voicestack_common.audio import decode_audio

pytestmark = pytest.mark.engine

MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


@pytest.mark.parametrize("fmt", list(MEDIA_TYPES))
def test_round_trip(tts_client: TestClient, listener: Listener, fmt: str) -> None:
    response = tts_client.post("/v1/audio/speech", json={"input": PHRASE, "voice": "af_heart", "response_format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[fmt]
    audio = response.content
    if fmt != "pcm":
        assert decode_audio(audio).duration > 1.5
    assert listener.words(audio, fmt) == words(PHRASE)


def test_mp3_is_the_default(tts_client: TestClient) -> None:
    response = tts_client.post("/v1/audio/speech", json={"input": "Hello world.", "voice": "af_heart"})
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.content[:3] == b"ID3" or response.content[0] == 0xFF
