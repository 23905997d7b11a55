"""The client commands install and run without the services (no whisper.cpp, no ONNX Runtime)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devkit.servers import free_port
from devkit.speech import REPO

HEAVY = ("pywhispercpp", "onnxruntime", "kokoro-onnx", "faster-whisper", "ctranslate2")
# Imports of the services fail, as on a machine that installed `voicestack` without `[stack]`.
WITHOUT_SERVICES = (
    "import sys\n"
    "for name in ('stt_broker', 'tts_broker', 'gateway', 'mqtt_bridge', 'pywhispercpp', 'onnxruntime'):\n"
    "    sys.modules[name] = None\n"
    "from voicestack.cli import app\n"
    "app(sys.argv[1:])\n"
)


def test_the_client_package_depends_on_no_engine() -> None:
    uv = os.environ.get("UV", "uv")
    plain = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--package", "voicestack"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pinned = {line.split("==")[0] for line in plain.splitlines() if "==" in line}
    assert not pinned & set(HEAVY)
    stack = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--package", "voicestack", "--extra", "stack"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pywhispercpp==" in stack
    assert "onnxruntime==" in stack


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SERVICES, *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_client_commands_run_without_the_services(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["health"], ["tts", "hello", "-o", str(tmp_path / "hello.wav")]):
        result = cli(*command, "--url", url)
        assert result.returncode == 1, result.stderr
        assert "cannot reach the gateway" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    up = cli("up")
    assert up.returncode == 1
    assert "pip install 'voicestack[stack]'" in up.stderr
    assert "Traceback" not in up.stderr
