"""MQTT commands round trips (MQTT 5 and 3.1.1) through a stand-in gateway on loopback."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from devkit.mqtt_kit import Mosquitto, Received, Subscriber, subscriber
from devkit.servers import free_port, serve
from mqtt_bridge.app import create_app
from mqtt_bridge.gateway import url_host_allowed
from mqtt_bridge.settings import BridgeSettings


def stand_in_gateway(calls: list[tuple[str, Any, str | None]]) -> FastAPI:
    """The gateway's two voice routes with the integration guide's shapes; transcripts echo the audio."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/voice/synthesize")
    async def synthesize(request: Request) -> JSONResponse:
        body = await request.json()
        calls.append(("synthesize", body, request.headers.get("x-request-id")))
        if body.get("voice") == "nobody":
            return JSONResponse(
                {"error": {"code": "unknown_voice", "message": "there is no voice 'nobody'"}}, status_code=422
            )
        return JSONResponse(
            {
                "audio_base64": base64.b64encode(b"RIFF" + body["text"].encode()).decode(),
                "audio_sample_rate": 24000,
                "audio_duration_seconds": 0.5,
                "voice": body.get("voice", "af_heart"),
                "speed": body.get("speed", 1.0),
            }
        )

    @app.post("/api/voice/transcribe")
    async def transcribe(file: UploadFile, language: str = Form("en")) -> dict[str, Any]:
        audio = await file.read()
        calls.append(("transcribe", {"filename": file.filename, "language": language}, None))
        return {
            "text": audio.decode(errors="replace"),
            "language": language,
            "confidence": None,
            "duration_seconds": 1.0,
            "model": "stand-in",
        }

    @app.get("/clip.wav")
    async def clip() -> Response:
        return Response(b"audio from a url", media_type="audio/wav")

    @app.get("/redirect.wav")
    async def redirect() -> Response:
        # An allowed host must not lead the bridge elsewhere (here: the stand-in's own metrics).
        return Response(status_code=302, headers={"Location": "http://localhost:9/metrics"})

    return app


@contextlib.contextmanager
def gateway() -> Iterator[tuple[str, list[tuple[str, Any, str | None]]]]:
    """The stand-in gateway served on loopback, and the calls it received."""
    calls: list[tuple[str, Any, str | None]] = []
    with serve(stand_in_gateway(calls), ready_path="/healthz") as url:
        yield url, calls


def ask(client: Subscriber, prefix: str, command: str, body: Any, *, request_id: str | None = None) -> Received:
    """A command from an MQTT 3.1.1-style client: the newest answer on .../response/{id} (or cmd/errors)."""
    raw = (
        body if isinstance(body, bytes) else json.dumps({**({"id": request_id} if request_id else {}), **body}).encode()
    )
    topic = f"{prefix}/cmd/{command}/response/{request_id}" if request_id else f"{prefix}/cmd/errors"
    before = len(client.on(topic))
    client.publish(f"{prefix}/cmd/{command}", raw)
    client.wait_for(topic, lambda _m: len(client.on(topic)) > before)
    return client.on(topic)[-1]


def test_synthesize_round_trip_over_mqtt5_with_response_topic_and_correlation(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    reply_to = f"replies/{uuid.uuid4().hex}"
    with (
        gateway() as (gateway_url, calls),
        serve(create_app(settings_for(gateway_url=gateway_url))),
        subscriber(mosquitto.port, [reply_to]) as client,
    ):
        request = {"id": "say-1", "text": "hello kitchen", "voice": "af_heart", "speed": 1.2}
        client.publish(
            f"{prefix}/cmd/synthesize",
            json.dumps(request).encode(),
            response_topic=reply_to,
            correlation=b"\x00corr-42",
        )
        answer = client.wait_for(reply_to)
        assert answer.properties.CorrelationData == b"\x00corr-42"
        body = answer.json()
        assert (body["id"], body["command"], body["ok"]) == ("say-1", "synthesize", True)
        assert base64.b64decode(body["result"]["audio_base64"]) == b"RIFFhello kitchen"
        assert body["result"]["audio_sample_rate"] == 24000
        assert body["result"]["speed"] == 1.2
        assert calls == [("synthesize", {"text": "hello kitchen", "voice": "af_heart", "speed": 1.2}, "mqtt-say-1")]


def test_transcribe_round_trip_over_mqtt311_with_base64_and_url_audio(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    with (
        gateway() as (gateway_url, calls),
        serve(
            create_app(
                settings_for(gateway_url=gateway_url, command_audio_urls=True, command_audio_url_hosts="127.0.0.1")
            )
        ),
        subscriber(mosquitto.port, [f"{prefix}/cmd/#"], protocol=paho.MQTTv311) as client,
    ):
        inline = ask(
            client,
            prefix,
            "transcribe",
            {"audio_base64": base64.b64encode(b"spoken words").decode(), "language": "en", "filename": "clip.wav"},
            request_id="t-1",
        )
        assert inline.json()["ok"] is True
        assert inline.json()["result"] == {
            "text": "spoken words",
            "language": "en",
            "confidence": None,
            "duration_seconds": 1.0,
            "model": "stand-in",
        }
        assert calls[0] == ("transcribe", {"filename": "clip.wav", "language": "en"}, None)
        fetched = ask(client, prefix, "transcribe", {"audio_url": f"{gateway_url}/clip.wav"}, request_id="t-2")
        assert fetched.json()["result"]["text"] == "audio from a url"


def test_a_bridge_on_mqtt311_answers_mqtt5_clients_by_id(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    with (
        gateway() as (gateway_url, _),
        serve(create_app(settings_for(gateway_url=gateway_url, mqtt_protocol="3.1.1"))),
        subscriber(mosquitto.port, [f"{prefix}/cmd/#", "ignored/reply"]) as client,
    ):
        client.publish(
            f"{prefix}/cmd/synthesize",
            json.dumps({"id": "v5-1", "text": "hi"}).encode(),
            response_topic="ignored/reply",
            correlation=b"c",
        )
        assert client.wait_for(f"{prefix}/cmd/synthesize/response/v5-1").json()["ok"] is True
        assert client.on("ignored/reply") == []


BAD_COMMANDS: list[tuple[str, str, Any, str | None, str, int]] = [
    ("malformed JSON", "synthesize", b'{"id": "x", "text": ', None, "invalid_json", 400),
    ("NaN", "synthesize", b'{"text": "a", "speed": NaN}', None, "invalid_json", 400),
    ("empty", "transcribe", b"", None, "empty_body", 400),
    ("nested too deep", "synthesize", b"[" * 2000, None, "json_too_deep", 400),
    ("not an object", "synthesize", b'["text"]', None, "invalid_command", 422),
    ("missing text", "synthesize", {"voice": "af_heart"}, "bad-1", "invalid_command", 422),
    ("unknown field", "synthesize", {"text": "a", "colour": "red"}, "bad-2", "invalid_command", 422),
    ("speed out of range", "synthesize", {"text": "a", "speed": -1}, "bad-3", "invalid_command", 422),
    ("no audio", "transcribe", {"language": "en"}, "bad-4", "invalid_command", 422),
    (
        "two audio sources",
        "transcribe",
        {"audio_base64": "AAAA", "audio_url": "http://127.0.0.1:9/a.wav"},
        "bad-5",
        "invalid_command",
        422,
    ),
    ("bad base64", "transcribe", {"audio_base64": "not base64!"}, "bad-6", "invalid_command", 422),
    ("not an http URL", "transcribe", {"audio_url": "file:///etc/passwd"}, "bad-7", "invalid_command", 422),
    ("gateway refuses", "synthesize", {"text": "a", "voice": "nobody"}, "bad-8", "unknown_voice", 422),
    ("audio URL missing", "transcribe", {"audio_url": "{gateway}/missing.wav"}, "bad-9", "audio_fetch_failed", 502),
    ("host not allowed", "transcribe", {"audio_url": "http://localhost:9/a.wav"}, "bad-10", "audio_url_forbidden", 422),
    (
        "credentials in URL",
        "transcribe",
        {"audio_url": "http://u:p@127.0.0.1:9/"},
        "bad-11",
        "audio_url_forbidden",
        422,
    ),
    ("redirect", "transcribe", {"audio_url": "{gateway}/redirect.wav"}, "bad-12", "audio_fetch_failed", 502),
    ("too large", "synthesize", {"text": "a" * 5000}, None, "command_too_large", 413),
    ("no id and no response topic", "synthesize", {"text": "who gets this?"}, None, "missing_id", 422),
]


def test_invalid_commands_get_error_answers(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    with (
        gateway() as (gateway_url, calls),
        serve(
            create_app(
                settings_for(
                    gateway_url=gateway_url,
                    command_max_bytes=4096,
                    command_audio_urls=True,
                    command_audio_url_hosts="127.0.0.1",
                )
            )
        ),
        subscriber(mosquitto.port, [f"{prefix}/cmd/#"], protocol=paho.MQTTv311) as client,
    ):
        for what, command, body, request_id, code, status in BAD_COMMANDS:
            if isinstance(body, dict) and "audio_url" in body:
                body = {**body, "audio_url": body["audio_url"].replace("{gateway}", gateway_url)}
            answer = ask(client, prefix, command, body, request_id=request_id)
            reply = answer.json()
            assert (reply["ok"], reply["error"]["code"], reply["status"]) == (False, code, status), what
            assert reply["id"] == request_id, what
            assert reply["error"]["message"], what
        assert [call[1].get("voice") for call in calls] == ["nobody"]


def test_an_unreachable_gateway_is_an_upstream_error(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    config = settings_for(gateway_url=f"http://127.0.0.1:{free_port()}")
    with serve(create_app(config)), subscriber(mosquitto.port, [f"{prefix}/cmd/#"]) as client:
        reply = ask(client, prefix, "synthesize", {"text": "anyone there?"}, request_id="lost-1").json()
        assert (reply["ok"], reply["status"], reply["error"]["code"]) == (False, 502, "gateway_unreachable")


def test_audio_urls_are_off_by_default(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    with (
        gateway() as (gateway_url, calls),
        serve(create_app(settings_for(gateway_url=gateway_url))),
        subscriber(mosquitto.port, [f"{prefix}/cmd/#"], protocol=paho.MQTTv311) as client,
    ):
        reply = ask(client, prefix, "transcribe", {"audio_url": f"{gateway_url}/clip.wav"}, request_id="u-1").json()
        assert (reply["ok"], reply["status"], reply["error"]["code"]) == (False, 422, "audio_url_disabled")
        assert calls == []


def test_audio_urls_need_an_allow_list() -> None:
    with pytest.raises(ValueError, match="COMMAND_AUDIO_URL_HOSTS"):
        BridgeSettings(_env_file=None, command_audio_urls=True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://nas.lan/a.wav", True),
        ("https://nas.lan:443/a.wav", True),
        ("http://nas.lan:8080/a.wav", True),  # a host without a port: any port
        ("http://box.lan:8081/a.wav", False),
        ("http://media.nas.lan/a.wav", False),
        ("http://cdn.media.lan/a.wav", True),
        ("http://127.0.0.1:9090/metrics", False),
        ("ftp://nas.lan/a.wav", False),
        ("http://nas.lan@evil.example/a.wav", False),
        ("http://nas.lan:99999/", False),
    ],
)
def test_audio_url_hosts_match_exactly(url: str, allowed: bool) -> None:
    assert url_host_allowed(url, ["nas.lan", "*.media.lan", "box.lan:8080"]) is allowed
