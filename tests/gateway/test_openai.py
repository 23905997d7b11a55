"""The official openai SDK pointed at the gateway: /v1/audio/transcriptions and /v1/audio/speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from devkit.servers import serve
from devkit.speech import words
from tests.gateway.conftest import SHORT, gateway_settings
from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]
KEY = "sk-test-gateway"


@pytest.fixture(scope="module")
def client(stt_url: str, tts_url: str) -> Iterator[openai.OpenAI]:
    """The SDK with an API key, against a gateway that requires one."""
    from gateway.app import create_app

    app = create_app(gateway_settings(stt_urls=stt_url, tts_urls=tts_url, api_keys=KEY))
    with serve(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory: pytest.TempPathFactory, sentence: tuple[str, Pcm]) -> Path:
    path = tmp_path_factory.mktemp("audio") / "speech.mp3"
    path.write_bytes(encode_audio(sentence[1], "mp3"))
    return path


def test_transcription(client: openai.OpenAI, speech_file: Path, sentence: tuple[str, Pcm]) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=speech_file, language="en")
    assert words(result.text) == words(sentence[0])


def test_transcription_stream(client: openai.OpenAI, speech_file: Path, sentence: tuple[str, Pcm]) -> None:
    events = list(client.audio.transcriptions.create(model="whisper-1", file=speech_file, stream=True))
    assert events[-1].type == "transcript.text.done"
    assert words(events[-1].text) == words(sentence[0])


def test_speech_streamed_as_wav(client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SHORT, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        data = b"".join(response.iter_bytes())
    assert decode_audio(data, 24_000).duration > 1.0
    heard = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", data), language="en")
    assert words(heard.text) == words(SHORT)


def test_speech_as_server_sent_events(client: openai.OpenAI) -> None:
    response = client.audio.speech.create(
        model="tts-1", voice="jm_kumo", input="Good night.", response_format="pcm", stream_format="sse"
    )
    text = response.content.decode()
    assert '"speech.audio.delta"' in text
    assert '"speech.audio.done"' in text


def test_sdk_errors_carry_the_brokers_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.audio.speech.create(model="tts-1", voice="no_such_voice", input="Hello.")
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "unknown_voice"


def test_a_wrong_key_is_refused(client: openai.OpenAI, speech_file: Path) -> None:
    wrong = client.with_options(api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        wrong.audio.transcriptions.create(model="whisper-1", file=speech_file)


def test_models_through_the_sdk(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert "whisper-1" in models
    assert models["whisper-1"].model_extra is not None
    assert models["whisper-1"].model_extra["kind"] == "stt"
    assert any(m.model_extra and m.model_extra.get("kind") == "tts" for m in models.values())
    assert client.models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
