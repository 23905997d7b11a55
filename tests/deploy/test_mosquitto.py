"""deploy/mosquitto: Debian's mosquitto 2 loads the config, and the example user logs in, nobody else."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devkit.mqtt_kit import Mosquitto
from tests.deploy.kit import DEPLOY, VARIANTS, with_defaults

CONFIG = DEPLOY / "mosquitto" / "mosquitto.conf"
# The test broker sets its own port, persistence and log file; the rest is ours as written.
SET_BY_THE_TEST = ("listener", "persistence", "persistence_location", "log_dest")


def directives() -> list[tuple[str, str]]:
    pairs = []
    for line in CONFIG.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            pairs.append((key, value.strip()))
    return pairs


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto with deploy's config, the password file as compose mounts it by default."""
    compose = VARIANTS[0].document()["services"]["mosquitto"]
    mounts = {with_defaults(v).split(":")[1]: with_defaults(v).split(":")[0] for v in compose["volumes"]}
    lines = []
    for key, value in directives():
        if key == "password_file":
            value = str((DEPLOY / mounts[value]).resolve())
        if key not in SET_BY_THE_TEST:
            lines.append(f"{key} {value}")
    server = Mosquitto(tmp_path, "\n".join(lines))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(port: int, username: str | None, password: str | None) -> ReasonCode:
    """The broker's CONNACK reason code for these credentials."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    answered = threading.Event()
    codes: list[ReasonCode] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, code: ReasonCode, _p: object) -> None:
        codes.append(code)
        answered.set()

    client.on_connect = on_connect
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_the_config_asks_for_passwords_and_keeps_state() -> None:
    found = dict(directives())
    assert found["listener"] == "1883"
    assert found["allow_anonymous"] == "false"
    assert found["password_file"] == "/mosquitto/config/passwd"
    assert found["persistence"] == "true"
    assert found["persistence_location"] == "/mosquitto/data/"


def test_the_example_user_connects_and_strangers_do_not(broker: Mosquitto) -> None:
    env = VARIANTS[0].document()["services"]["mqtt_bridge"]["environment"]
    username = with_defaults(env["MQTT_BRIDGE_MQTT_USERNAME"])
    password = with_defaults(env["MQTT_BRIDGE_MQTT_PASSWORD"])
    assert not connect(broker.port, username, password).is_failure
    assert connect(broker.port, username, password + "x").is_failure
    assert connect(broker.port, None, None).is_failure


def test_the_healthcheck_command_passes_against_the_broker(broker: Mosquitto) -> None:
    """The compose healthcheck, run as the container's shell would (only the port differs)."""
    if shutil.which("mosquitto_sub") is None:
        raise RuntimeError(
            "mosquitto_sub is not installed: the test command installs it (Debian package mosquitto-clients)"
        )
    test = VARIANTS[0].document()["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert " -p 1883 " in test[1]
    command = with_defaults(test[1]).replace(" -p 1883 ", f" -p {broker.port} ")
    assert subprocess.run(["sh", "-c", command], timeout=20, check=False).returncode == 0
    broken = command.replace("-P '", "-P 'wrong")
    assert subprocess.run(["sh", "-c", broken], timeout=20, check=False, capture_output=True).returncode != 0
