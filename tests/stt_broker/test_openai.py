"""The official openai SDK against a real broker process: a contract test of /v1/audio/transcriptions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from devkit.servers import serve
from devkit.speech import words
from stt_broker.app import create_app
from tests.stt_broker.conftest import stt_settings
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def client(model_cache: Path) -> Iterator[openai.OpenAI]:
    with (
        serve(create_app(stt_settings(model_cache))) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60) as sdk,
    ):
        yield sdk


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory: pytest.TempPathFactory, two_sentences: tuple[str, Pcm]) -> Path:
    path = tmp_path_factory.mktemp("audio") / "speech.mp3"
    path.write_bytes(encode_audio(two_sentences[1], "mp3"))
    return path


def test_json(client: openai.OpenAI, speech_file: Path, two_sentences: tuple[str, Pcm]) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=speech_file)
    assert words(result.text) == words(two_sentences[0])


def test_verbose_json_with_word_and_segment_timestamps(
    client: openai.OpenAI, speech_file: Path, two_sentences: tuple[str, Pcm]
) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=speech_file,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert result.language == "english"
    assert result.duration == pytest.approx(two_sentences[1].duration, abs=0.05)
    assert result.segments
    assert result.words
    assert [w for item in result.words for w in words(item.word)] == words(two_sentences[0])
    assert all(s.start <= s.end for s in result.segments)


def test_text_and_subtitles(client: openai.OpenAI, speech_file: Path, two_sentences: tuple[str, Pcm]) -> None:
    text = client.audio.transcriptions.create(model="whisper-1", file=speech_file, response_format="text")
    assert words(str(text)) == words(two_sentences[0])
    srt = client.audio.transcriptions.create(model="whisper-1", file=speech_file, response_format="srt")
    assert re.search(r"^1\n00:00:00,\d{3} --> ", str(srt))
    vtt = client.audio.transcriptions.create(model="whisper-1", file=speech_file, response_format="vtt")
    assert str(vtt).startswith("WEBVTT")


def test_stream_sends_a_delta_per_segment_then_done(
    client: openai.OpenAI, speech_file: Path, two_sentences: tuple[str, Pcm]
) -> None:
    stream = client.audio.transcriptions.create(model="whisper-1", file=speech_file, stream=True)
    events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2  # two sentences, two segments
    assert len(done) == 1
    assert events[-1] is done[0]
    assert "".join(d.delta for d in deltas) == done[0].text
    assert words(done[0].text) == words(two_sentences[0])


def test_errors_surface_as_sdk_exceptions(client: openai.OpenAI, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not audio\n" * 40)
    with pytest.raises(openai.APIStatusError) as info:
        client.audio.transcriptions.create(model="whisper-1", file=bogus)
    assert info.value.status_code == 415
    assert info.value.body == {"code": "unsupported_audio", "message": "the upload is not a recognised audio file"}
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.transcriptions.create(model="gpt-4o-transcribe-nope", file=bogus)
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "tiny.en" in missing.value.body["message"]  # type: ignore[index]


def test_models_endpoint(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"tiny.en", "base", "whisper-1"}
