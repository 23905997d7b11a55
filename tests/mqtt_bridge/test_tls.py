"""TLS with a private CA and a client certificate, and username/password, against mosquitto."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.mqtt_kit import Mosquitto, event_json, fast_settings, make_event, wait_until
from devkit.servers import serve
from mqtt_bridge.app import create_app
from voicestack_common.events import EVENTS_PATH


def openssl(*args: str, cwd: Path) -> None:
    """Run the openssl CLI."""
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(name: str, subject: str, cwd: Path, san: str | None = None) -> None:
    """A P-256 key and a certificate for it signed by the test CA."""
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=cwd,
    )
    extra = []
    if san:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        *extra,
        cwd=cwd,
    )


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto with TLS only, client certificates required, and a password file."""
    pki = tmp_path / "pki"
    pki.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=voicestack test CA",
        cwd=pki,
    )
    issue("server", "/CN=127.0.0.1", pki, san="IP:127.0.0.1")
    issue("client", "/CN=mqtt-bridge", pki)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "bridge", "s3cret pass"], check=True, capture_output=True
    )
    broker = Mosquitto(
        tmp_path,
        f"cafile {pki}/ca.pem\ncertfile {pki}/server.pem\nkeyfile {pki}/server.key\n"
        f"require_certificate true\nallow_anonymous false\npassword_file {pki}/passwd",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_events_go_out_over_tls_with_a_client_certificate_and_a_password(
    secure_broker: Mosquitto, tmp_path: Path, prefix: str
) -> None:
    pki = tmp_path / "pki"
    tls = {
        "mqtt_tls_ca_file": pki / "ca.pem",
        "mqtt_tls_cert_file": pki / "client.pem",
        "mqtt_tls_key_file": pki / "client.key",
    }
    url = f"mqtts://127.0.0.1:{secure_broker.port}"
    settings = fast_settings(
        url, prefix, tmp_path / "outbox.sqlite3", mqtt_username="bridge", mqtt_password="s3cret pass", **tls
    )
    with serve(create_app(settings)) as base:
        assert httpx.post(base + EVENTS_PATH, json=event_json(make_event()), timeout=10).status_code == 202
        wait_until(
            lambda: (
                'mqtt_bridge_events_published_total{type="transcription"} 1.0'
                in httpx.get(base + "/metrics", timeout=5).text
            ),
            10,
            "the PUBACK over TLS",
        )

    wrong = fast_settings(url.replace("mqtts://", "mqtts://bridge:wrong@"), prefix, tmp_path / "other.sqlite3", **tls)
    with serve(create_app(wrong), ready_path="/healthz") as base:
        wait_until(lambda: "mqtt_error" in httpx.get(base + "/readyz", timeout=5).json()["checks"], 10, "the refusal")
        ready = httpx.get(base + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert "authori" in ready.json()["checks"]["mqtt_error"].lower()
