"""A Realtime session's reply voice follows the language the user spoke, heard by the model the session chose."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from devkit.speech import espeak_speech
from tests.realtime.conftest import API_KEY
from tests.realtime.kit import of, spoken_turn, with_silence
from voicestack_common.audio import decode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]

SPANISH = "Buenos días. Me gustaría reservar una mesa para dos personas esta noche."


def test_spanish_speech_gets_a_spanish_voice(realtime_url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    voices = httpx.get(f"{realtime_url}/api/voice/voices", headers=headers).json()
    codes = {d["id"]: d["lang_code"] for d in voices.get("details", []) if d.get("available", True)}
    if "e" not in codes.values():
        pytest.skip("the TTS broker offers no Spanish voice here")
    audio = with_silence(decode_audio(espeak_speech(SPANISH, voice="es", speed=140), sample_rate=24_000)).to_pcm16()
    session = {
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        # no language: Whisper base (multilingual) detects it; no voice: the reply follows it
        "input_audio_transcription": {"model": "base"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
    }

    events = asyncio.run(spoken_turn(realtime_url, API_KEY, session, audio))
    heard = of(events, "conversation.item.input_audio_transcription.completed")[0]["transcript"].lower()
    assert {"mesa", "personas", "noche"} & set(heard.replace(".", " ").replace(",", " ").split()), heard
    done = of(events, "response.done")[0]["response"]
    assert done["status"] == "completed"
    assert codes[done["voice"]] == "e", done["voice"]
