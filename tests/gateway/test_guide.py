"""The integration guide's curl examples, verbatim (only the host and port differ), on the real stack."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devkit.speech import words
from voicestack_common.audio import Pcm, decode_audio
from voicestack_common.encode import encode_audio

pytestmark = [
    pytest.mark.engine,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

# Copied from the guide's "API Endpoints" and "Troubleshooting" sections.
TRANSCRIBE = '''curl -X POST http://localhost:8000/api/voice/transcribe \\
  -F "file=@audio.wav" \\
  -F "language=en"'''
SYNTHESIZE = """curl -X POST http://localhost:8000/api/voice/synthesize \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Hello, this is a test",
    "voice": "af_heart",
    "lang_code": "a",
    "speed": 1.0
  }\'"""
AUDIO_STREAM = """curl -X POST http://localhost:8000/api/voice/audio-stream \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Hello world",
    "voice": "af_heart"
  }' \\
  -o output.wav"""
SYNTHESIZE_MINIMAL = """curl -X POST http://localhost:8000/api/voice/synthesize \\
  -H "Content-Type: application/json" \\
  -d '{"text": "Test"}' \\
  | python -m json.tool"""


def run(command: str, gateway_url: str, cwd: Path) -> str:
    """Run a guide command through the shell, pointed at the test gateway."""
    command = command.replace("http://localhost:8000", gateway_url)
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_transcribe(gateway_url: str, tmp_path: Path, sentence: tuple[str, Pcm]) -> None:
    (tmp_path / "audio.wav").write_bytes(encode_audio(sentence[1], "wav"))
    body = json.loads(run(TRANSCRIBE, gateway_url, tmp_path))
    assert words(body["text"]) == words(sentence[0])
    assert body["language"] == "en"


def test_synthesize(gateway_url: str, tmp_path: Path) -> None:
    body = json.loads(run(SYNTHESIZE, gateway_url, tmp_path))
    assert base64.b64decode(body["audio_base64"])[:4] == b"RIFF"
    assert body["audio_sample_rate"] == 24_000
    assert body["speed"] == 1.0


def test_audio_stream(gateway_url: str, tmp_path: Path) -> None:
    run(AUDIO_STREAM, gateway_url, tmp_path)
    audio = (tmp_path / "output.wav").read_bytes()
    assert audio[:4] == b"RIFF"
    assert decode_audio(audio, 24_000).duration > 0.3


def test_synthesize_with_defaults_piped_to_json_tool(gateway_url: str, tmp_path: Path) -> None:
    assert "audio_base64" in json.loads(run(SYNTHESIZE_MINIMAL, gateway_url, tmp_path))


def test_voices_and_health(gateway_url: str, tmp_path: Path) -> None:
    voices = json.loads(run("curl http://localhost:8000/api/voice/voices", gateway_url, tmp_path))
    assert set(voices) >= {"voices", "default_voice", "service"}
    health = json.loads(run("curl http://localhost:8000/api/voice/health", gateway_url, tmp_path))
    assert health["status"] == "healthy"
    assert health["sst_healthy"] is True
    assert health["tts_healthy"] is True
