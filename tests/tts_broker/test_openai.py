"""The official openai SDK against a real broker: a contract test of /v1/audio/speech."""

from __future__ import annotations

import base64
import json

import openai
import pytest

from devkit.speech import words
from tests.tts_broker.conftest import PHRASE, THREE_SENTENCES, Listener

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def client(tts_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tts_server}/v1", api_key="unused", max_retries=0, timeout=120)


def test_create_with_an_openai_voice_name(client: openai.OpenAI, listener: Listener) -> None:
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input=PHRASE, response_format="wav", instructions="Speak calmly."
    )
    assert response.response.headers["content-type"] == "audio/wav"
    assert listener.words(response.content) == words(PHRASE)


def test_streaming_response_arrives_in_chunks(client: openai.OpenAI, listener: Listener) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="onyx", input=THREE_SENTENCES
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"  # mp3, OpenAI's default
        chunks = list(response.iter_bytes(chunk_size=None))
    assert len(chunks) >= 3
    assert listener.words(b"".join(chunks)) == words(THREE_SENTENCES)


def test_sse_sends_deltas_then_done(client: openai.OpenAI, listener: Listener) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice={"id": "am_adam"},
        input="Hello there. Thank you very much.",
        response_format="pcm",
        stream_format="sse",
        speed=1.0,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")
        ]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2
    assert events[-1]["type"] == "speech.audio.done"
    usage = events[-1]["usage"]
    assert usage["input_tokens"] == len("Hello there. Thank you very much.")
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > usage["input_tokens"]
    audio = b"".join(base64.b64decode(d["audio"]) for d in deltas)
    assert listener.words(audio, "pcm") == words("Hello there. Thank you very much.")


def test_errors_surface_as_sdk_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.audio.speech.create(model="tts-1", voice="af_nobody", input="Hello.")
    assert info.value.body["code"] == "unknown_voice"  # type: ignore[index]
    assert "af_alloy, af_aoede" in info.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", speed=5.0)
    assert info.value.body["code"] == "invalid_speed"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as info:
        client.audio.speech.create(model="dall-e-3", voice="alloy", input="Hello.")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "kokoro-82m-int8" in info.value.body["message"]  # type: ignore[index]
