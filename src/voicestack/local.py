"""The local stack: which processes ``voicestack up`` starts, wired to each other by their settings."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from urllib.parse import urlparse

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from voicestack.stack import Service, python_module, run

# Set VOICESTACK_EMBEDDED_MQTT=0 to use an MQTT broker of your own (MQTT_BRIDGE_MQTT_URL).
EMBEDDED_MQTT_ENV = "VOICESTACK_EMBEDDED_MQTT"


def prepare_models(console: Console) -> None:
    """Convert the catalog's Whisper models to ggml and assemble Kokoro and its voices once, with a progress
    display, before anything starts (what is already in the cache is skipped)."""
    from stt_broker.catalog import ggml_locator
    from stt_broker.models import ModelError
    from stt_broker.settings import SttSettings
    from tts_broker.models import ALL_VOICES_FILE, assemble_bundled_model, resolve_voices
    from tts_broker.settings import TtsSettings

    stt, tts = SttSettings(), TtsSettings()
    steps: list[tuple[str, Callable[[], object]]] = []
    if stt.engine == "whispercpp" and stt.model_path is None:
        for model_id in stt.catalog_ids():
            if not (stt.cache_dir / "whisper" / f"ggml-{model_id}.bin").is_file():
                try:
                    locate = ggml_locator(stt, model_id)
                except ModelError:
                    continue  # not made offline: the broker says what to do
                steps.append((f"converting Whisper {model_id} to ggml", locate))
    if tts.engine == "kokoro" and tts.model_path is None:
        steps.append(("assembling the Kokoro int8 model", lambda: assemble_bundled_model(tts.cache_dir)))
        if tts.voices_path is None and not (tts.cache_dir / "kokoro" / ALL_VOICES_FILE).is_file():
            steps.append(("assembling Kokoro's 54 voices", lambda: resolve_voices(tts)))
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        for description, step in steps:
            task = progress.add_task(description, total=1)
            step()
            progress.update(task, completed=1)


# MQTT 3.1.1 CONNECT (clean session, 10 s keep-alive) from the client id below, and DISCONNECT.
_PROBE_CLIENT_ID = b"voicestack-up-probe"
_CONNECT = (
    bytes([0x10, 12 + 2 + len(_PROBE_CLIENT_ID)])
    + b"\x00\x04MQTT\x04\x02\x00\x0a"
    + len(_PROBE_CLIENT_ID).to_bytes(2, "big")
    + _PROBE_CLIENT_ID
)
_DISCONNECT = b"\xe0\x00"


def mqtt_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether an MQTT broker accepts a connection: a real CONNECT answered by CONNACK 0, then a
    clean DISCONNECT (a bare TCP connect that hangs up makes a broker log an error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_CONNECT)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            sock.sendall(_DISCONNECT)
            return answer[0] == 0x20 and answer[3] == 0
    except OSError:
        return False


def services() -> tuple[list[Service], dict[str, str]]:
    """The stack's processes in start order, and the URLs to show."""
    from conversation.settings import ConversationSettings
    from gateway.settings import GatewaySettings
    from mqtt_bridge.settings import BridgeSettings
    from stt_broker.settings import SttSettings
    from tts_broker.settings import TtsSettings

    stt, tts, gateway, bridge = SttSettings(), TtsSettings(), GatewaySettings(), BridgeSettings()
    conversation = ConversationSettings()
    conversation_url = f"http://127.0.0.1:{conversation.port}"
    stt_url, tts_url = f"http://127.0.0.1:{stt.port}", f"http://127.0.0.1:{tts.port}"
    gateway_url, bridge_url = f"http://127.0.0.1:{gateway.port}", f"http://127.0.0.1:{bridge.port}"
    mqtt = urlparse(bridge.mqtt_url)
    mqtt_port = mqtt.port or 1883
    wiring = {  # each service finds the others where this stack puts them, unless configured
        "GATEWAY_STT_URLS": stt_url,
        "GATEWAY_TTS_URLS": tts_url,
        "GATEWAY_EVENTS_URL": bridge_url,
        "GATEWAY_CONVERSATION_URLS": conversation_url,
        "STT_EVENTS_URL": bridge_url,  # transcripts made over Wyoming
        "MQTT_BRIDGE_GATEWAY_URL": gateway_url,
        "MQTT_BRIDGE_SERVICES": json.dumps(
            {
                "gateway": [gateway_url],
                "stt_broker": [stt_url],
                "tts_broker": [tts_url],
                "conversation": [conversation_url],
            }
        ),
    }
    env = {key: value for key, value in wiring.items() if key not in os.environ}
    stack: list[Service] = []
    embedded = os.environ.get(EMBEDDED_MQTT_ENV, "1") != "0" and mqtt.hostname in ("127.0.0.1", "localhost")
    if embedded and "MQTT_BRIDGE_MQTT_PROTOCOL" not in os.environ:
        # amqtt speaks 3.1.1 only; saying so skips the bridge's MQTT 5 attempt (a 3 s wait).
        env["MQTT_BRIDGE_MQTT_PROTOCOL"] = "3.1.1"
    if embedded:
        stack.append(
            Service(
                "mqtt",
                python_module("mqtt_bridge.cli", "broker", "--port", str(mqtt_port)),
                None,
                mqtt_port,
                "magenta",
                probe=lambda: mqtt_accepts("127.0.0.1", mqtt_port),
            )
        )
    stack += [
        Service("stt_broker", python_module("stt_broker.cli", "serve"), f"{stt_url}/readyz", stt.port, "cyan", env),
        Service("tts_broker", python_module("tts_broker.cli", "serve"), f"{tts_url}/readyz", tts.port, "green", env),
        Service(
            "mqtt_bridge", python_module("mqtt_bridge.cli", "serve"), f"{bridge_url}/readyz", bridge.port, "yellow", env
        ),
        Service(
            "conversation",
            python_module("conversation.cli", "serve"),
            f"{conversation_url}/readyz",
            conversation.port,
            "bright_cyan",
            env,
        ),
        Service("gateway", python_module("gateway.cli", "serve"), f"{gateway_url}/readyz", gateway.port, "blue", env),
    ]
    urls = {
        "voice page": f"{gateway_url}/",
        "gateway": gateway_url,
        "API docs": f"{gateway_url}/docs",
        "MQTT": f"mqtt://{mqtt.hostname}:{mqtt_port}",
        "STT broker": stt_url,
        "TTS broker": tts_url,
        "MQTT bridge": bridge_url,
        "conversations": conversation_url,
    }
    if stt.wyoming_enabled:
        urls["Wyoming STT"] = f"tcp://{stt.host}:{stt.wyoming_port}"
    if tts.wyoming_enabled:
        urls["Wyoming TTS"] = f"tcp://{tts.host}:{tts.wyoming_port}"
    return stack, urls


def up(console: Console) -> int:
    """Prepare models, start everything, supervise; the exit code of ``voicestack up``."""
    prepare_models(console)
    stack, urls = services()

    def banner() -> None:
        console.rule("[bold]voicestack is up[/bold]")
        for name, url in urls.items():
            console.print(f"  {name:>12}  {url}")
        console.print(
            "  Try: source .venv/bin/activate && "
            'voicestack tts "hello there" -o hi.wav && voicestack stt hi.wav'
            "   (in another terminal, in this folder; Ctrl-C stops)"
        )
        console.rule()

    return run(stack, banner, console)
