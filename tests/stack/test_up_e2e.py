"""End to end: ``voicestack up`` as a real process, the CLI against it, MQTT, and a clean Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devkit.servers import free_port, stack_env
from devkit.speech import REPO, kokoro_speech, words
from voicestack_common.audio import resample
from voicestack_common.encode import encode_audio

pytestmark = [pytest.mark.engine, pytest.mark.slow]
START_TIMEOUT_S = 240


@dataclass
class Stack:
    process: subprocess.Popen[str]
    env: dict[str, str]
    ports: dict[str, int]
    log: list[str]

    def cli(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicestack.cli", *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=180,
        )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("stack")
    names = ("gateway", "stt", "tts", "bridge", "mqtt", "stt_wyoming", "tts_wyoming", "conversation")
    ports = {name: free_port() for name in names}
    env = {
        **stack_env(home, ports),
        "MQTT_BRIDGE_HEALTH_INTERVAL": "1",
        "VOICESTACK_URL": f"http://127.0.0.1:{ports['gateway']}",
        "STT_WYOMING_ENABLED": "true",
        "STT_WYOMING_PORT": str(ports["stt_wyoming"]),
        "TTS_WYOMING_ENABLED": "true",
        "TTS_WYOMING_PORT": str(ports["tts_wyoming"]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "voicestack.cli", "up"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as in a terminal: a test run started in the background (``cmd &`` in a script) has
        # SIGINT ignored, and Python then leaves it ignored in every child.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    log: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if "voicestack is up" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(START_TIMEOUT_S):
        process.kill()
        process.wait(30)
        pytest.fail("voicestack up did not come up:\n" + "".join(log[-40:]))
    running = Stack(process, env, ports, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        assert process.stdout is not None
        process.stdout.close()


def test_cli_round_trip_and_transcript_on_mqtt(stack: Stack, tmp_path: Path) -> None:
    received: list[dict[str, object]] = []
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-test")
    subscriber.on_message = lambda c, u, msg: received.append(json.loads(msg.payload))
    subscriber.connect("127.0.0.1", stack.ports["mqtt"])
    subscriber.subscribe("voicestack/transcripts", qos=1)
    subscriber.loop_start()
    try:
        made = stack.cli("tts", "hello there", "-o", "hi.wav", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert (tmp_path / "hi.wav").read_bytes()[:4] == b"RIFF"
        heard = stack.cli("stt", "hi.wav", cwd=tmp_path)
        assert heard.returncode == 0, heard.stderr
        assert words(heard.stdout) == ["hello", "there"]
        live = stack.cli("stt", "--stream", "hi.wav", "--speed", "4", cwd=tmp_path)
        assert live.returncode == 0, live.stderr
        assert words(live.stdout.split("]", 1)[-1]) == ["hello", "there"]
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert received, "no transcript event on voicestack/transcripts"
    assert words(str(received[0]["text"])) == ["hello", "there"]


def test_the_wyoming_example_synthesizes_and_transcribes_and_the_transcript_reaches_mqtt(
    stack: Stack, tmp_path: Path
) -> None:
    """docs/examples/wyoming_client.py against the stack, as docs/wyoming.md runs it."""
    received: list[dict[str, object]] = []
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-wyoming")
    subscriber.on_message = lambda c, u, msg: received.append(json.loads(msg.payload))
    subscriber.connect("127.0.0.1", stack.ports["mqtt"])
    subscriber.subscribe("voicestack/transcripts", qos=1)
    subscriber.loop_start()
    try:
        script = REPO / "docs" / "examples" / "wyoming_client.py"
        example = subprocess.run(
            [sys.executable, str(script), "Please call me back tomorrow morning.", "-o", "said.wav"],
            env=stack.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert example.returncode == 0, example.stdout + example.stderr
        deadline = time.monotonic() + 30
        while not [e for e in received if e["source"] == "stt_broker/wyoming"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    out = example.stdout
    assert "voicestack-stt" in out
    assert "voicestack-tts" in out
    heard = next(line for line in out.splitlines() if line.startswith("heard:"))
    assert words(heard.removeprefix("heard:")) == ["please", "call", "me", "back", "tomorrow", "morning"]
    assert (tmp_path / "said.wav").read_bytes()[:4] == b"RIFF"
    (event,) = [e for e in received if e["source"] == "stt_broker/wyoming"]
    assert words(str(event["text"])) == ["please", "call", "me", "back", "tomorrow", "morning"]


def test_health_and_errors_from_the_cli(stack: Stack, tmp_path: Path) -> None:
    health = stack.cli("health", cwd=tmp_path)
    assert health.returncode == 0, health.stdout + health.stderr
    assert "healthy" in health.stdout
    for service in ("stt", "tts", "mqtt_bridge", "mqtt_broker"):  # a row for every service
        assert re.search(rf"\b{service}\b.*\byes\b", health.stdout), health.stdout
    missing = stack.cli("stt", "nope.wav", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error:")
    assert "Traceback" not in missing.stderr


DOCS_WITH_CURL = ("README.md", "docs/api.md", "docs/gateway.md", "docs/tts.md", "docs/mqtt.md", "docs/conversations.md")
DEFAULT_PORTS = {"8000": "gateway", "9082": "stt", "8080": "tts", "9090": "bridge"}


def curl_examples(text: str) -> list[str]:
    """Every curl command in the shell blocks of a Markdown file (continuations and quotes joined)."""
    commands: list[str] = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        current = ""
        for line in block.splitlines():
            if not current and not line.strip().startswith("curl"):
                continue
            current = f"{current} {line.strip()}" if current else line.strip()
            if current.endswith("\\"):
                current = current[:-1]
            elif current.count("'") % 2 == 0:
                commands.append(current)
                current = ""
    return commands


def test_every_curl_example_in_the_docs_works(stack: Stack, tmp_path: Path) -> None:
    """The README's and docs' curl examples, run as written against the running stack (ports swapped)."""
    clip = kokoro_speech("Hello there, this is a test.")
    for name, fmt in (
        ("hi.wav", "wav"),
        ("audio.wav", "wav"),
        ("speech.wav", "wav"),
        ("speech.mp3", "mp3"),
        ("speech.webm", "webm"),
    ):
        (tmp_path / name).write_bytes(encode_audio(clip, fmt))
    (tmp_path / "speech.pcm").write_bytes(resample(clip, 16_000).to_pcm16())
    commands = [c for doc in DOCS_WITH_CURL for c in curl_examples((REPO / doc).read_text())]
    assert len(commands) >= 20
    for command in commands:
        command = command.split(" | ")[0]  # a player at the end of a pipe is the reader's business
        for port, name in DEFAULT_PORTS.items():
            command = command.replace(f"localhost:{port}", f"127.0.0.1:{stack.ports[name]}")
        command = (
            command.replace("curl ", "curl --fail-with-body -sS --max-time 120 -o /dev/null ", 1)
            if " -o " not in command
            else command.replace("curl ", "curl --fail-with-body -sS --max-time 120 ", 1)
        )
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{command}\n{result.stdout[-500:]}{result.stderr[-500:]}"


SERVICE_PREFIXES = ("mqtt", "stt_broker", "tts_broker", "mqtt_bridge", "conversation", "gateway")


def test_the_log_reads_well_under_a_pipe(stack: Stack) -> None:
    """One line per record whatever the width, no ERROR on a healthy start, no line per health probe."""
    time.sleep(12)  # the bridge polls every service every 10 s: at least one round of probes
    lines = [line.rstrip("\n") for line in list(stack.log)]
    service_lines = [line for line in lines if line.lstrip().startswith(tuple(f"{p} | " for p in SERVICE_PREFIXES))]
    assert len(service_lines) > 10
    # A wrapped record would continue on a line without the service prefix; the only other lines are
    # the supervisor's own ("<service> ready", the banner, the model preparation).
    stray = [
        line
        for line in lines
        if line.strip()
        and line not in service_lines
        and not re.match(rf"^\s*({'|'.join(SERVICE_PREFIXES)}) ready$", line)
        and not re.match(
            r"^(─+|.*voicestack is up.*|\s+\S.*\s[a-z]+://\S+|\s+Try: .*|.*(converting|assembling).*)$", line
        )
    ]
    assert not stray, "\n".join(stray)
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line], "\n".join(lines)
    assert not [line for line in lines if "HTTP Request:" in line or re.search(r'"GET /(readyz|healthz|metrics)', line)]


def test_ctrl_c_stops_every_child_and_frees_every_port(stack: Stack) -> None:
    children = _children(stack.process.pid)
    assert len(children) == 6  # mqtt, stt, tts, bridge, conversation, gateway
    stack.process.send_signal(signal.SIGINT)
    try:
        code = stack.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("voicestack up did not stop within 60 s of Ctrl-C:\n" + "".join(stack.log[-60:]))
    assert code == 0
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert all(_port_free(port) for port in stack.ports.values())
