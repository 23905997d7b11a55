"""POST /v1/events → MQTT, against a real mosquitto, with the bridge served in process."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devkit.mqtt_kit import Mosquitto, event_json, make_event, subscriber, wait_until
from devkit.servers import serve
from mqtt_bridge.app import create_app
from mqtt_bridge.settings import BridgeSettings
from tests.jsonpolicy import check_accepted, check_refusals
from voicestack_common.events import EVENTS_PATH, MAX_TEXT_CHARS


def test_an_event_reaches_a_subscriber_on_its_topic(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    transcription = make_event("what is the weather tomorrow")
    synthesis = make_event("It will be sunny.", type="synthesis", voice="af_heart", confidence=None)
    with subscriber(mosquitto.port, [f"{prefix}/#"]) as sub, serve(create_app(settings_for())) as url:
        for event in (transcription, synthesis):
            response = httpx.post(url + EVENTS_PATH, json=event_json(event), timeout=10)
            assert response.status_code == 202, response.text
            assert response.json() == {"event_id": event.event_id, "duplicate": False}
        got = sub.wait_for(f"{prefix}/transcripts")
        assert got.json() == event_json(transcription)
        assert not got.retain
        assert got.properties.ContentType == "application/json"
        assert sub.wait_for(f"{prefix}/synthesis").json() == event_json(synthesis)
        assert sub.wait_for(f"{prefix}/status").payload == b"online"
        assert len(sub.on(f"{prefix}/transcripts")) == 1


def test_a_duplicate_event_id_is_accepted_once(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    event, barrier = make_event(), make_event("barrier")
    with subscriber(mosquitto.port, [f"{prefix}/transcripts"]) as sub, serve(create_app(settings_for())) as url:
        first = httpx.post(url + EVENTS_PATH, json=event_json(event), timeout=10)
        again = httpx.post(url + EVENTS_PATH, json=event_json(event.model_copy(update={"text": "changed"})), timeout=10)
        assert first.status_code == again.status_code == 202
        assert again.json() == {"event_id": event.event_id, "duplicate": True}
        sub.wait_for(f"{prefix}/transcripts", lambda m: m.json()["event_id"] == event.event_id)
        # Events go out in order: once the barrier is here, a second copy would have been too.
        httpx.post(url + EVENTS_PATH, json=event_json(barrier), timeout=10).raise_for_status()
        sub.wait_for(f"{prefix}/transcripts", lambda m: m.json()["event_id"] == barrier.event_id)
        copies = [m for m in sub.on(f"{prefix}/transcripts") if m.json()["event_id"] == event.event_id]
        assert [m.json()["text"] for m in copies] == [event.text]
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "mqtt_bridge_events_duplicate_total 1.0" in metrics


BAD_BODIES = [
    ("malformed JSON", "application/json", b'{"type": "transcription", ', 400, "invalid_json"),
    ("empty body", "application/json", b"", 400, "empty_body"),
    (
        "NaN is not JSON",
        "application/json",
        json.dumps({**event_json(make_event()), "duration_seconds": "__NAN__"}).replace('"__NAN__"', "NaN").encode(),
        400,
        "invalid_json",
    ),
    ("not an object", "application/json", b"[1, 2, 3]", 422, "invalid_event"),
    ("missing fields", "application/json", b'{"type": "transcription", "text": "hi"}', 422, "invalid_event"),
    (
        "unknown field",
        "application/json",
        json.dumps({**event_json(make_event()), "extra": 1}).encode(),
        422,
        "invalid_event",
    ),
    (
        "unknown type",
        "application/json",
        json.dumps({**event_json(make_event()), "type": "other"}).encode(),
        422,
        "invalid_event",
    ),
    (
        "bad event id",
        "application/json",
        json.dumps({**event_json(make_event()), "event_id": "a/b#c d"}).encode(),
        422,
        "invalid_event",
    ),
    (
        "text over the limit",
        "application/json",
        json.dumps(event_json(make_event())).replace("turn on the kitchen lights", "x" * (MAX_TEXT_CHARS + 1)).encode(),
        422,
        "invalid_event",
    ),
    ("form body", "application/x-www-form-urlencoded", b"type=transcription", 415, "unsupported_media_type"),
    ("oversized body", "application/json", b'{"text": "' + b"y" * 600_000 + b'"}', 413, "payload_too_large"),
]


def test_bad_input_gets_clear_errors_and_leaves_the_outbox_intact(
    mosquitto: Mosquitto, prefix: str, tmp_path: Path, settings_for: Callable[..., BridgeSettings]
) -> None:
    good = make_event()
    with subscriber(mosquitto.port, [f"{prefix}/transcripts"]) as sub, serve(create_app(settings_for())) as url:
        for what, content_type, body, status, code in BAD_BODIES:
            response = httpx.post(url + EVENTS_PATH, content=body, headers={"content-type": content_type}, timeout=10)
            assert response.status_code == status, f"{what}: {response.text}"
            assert response.json()["error"]["code"] == code, what
            assert response.json()["error"]["message"], what
        chunked = httpx.post(
            url + EVENTS_PATH,
            content=iter([b'{"text": "', b"z" * 600_000, b'"}']),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert chunked.status_code == 413
        response = httpx.post(url + EVENTS_PATH, json=event_json(good), timeout=10)
        assert response.status_code == 202
        sub.wait_for(f"{prefix}/transcripts")
        missing = httpx.post(
            url + EVENTS_PATH,
            content=b'{"type": "synthesis"}',
            headers={"content-type": "application/json"},
            timeout=10,
        ).json()
        assert missing["error"]["message"].startswith("text: ")
        assert {"loc": ["duration_seconds"], "msg": "Field required"} in missing["error"]["details"]["errors"]
    assert [m.json() for m in sub.on(f"{prefix}/transcripts")] == [event_json(good)]
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
        assert db.execute("SELECT event_id FROM seen").fetchall() == [(good.event_id,)]


def test_events_are_accepted_while_the_broker_is_down(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    events = [make_event(f"event {i}") for i in range(5)]
    with serve(create_app(settings_for())) as url:
        mosquitto.stop()
        wait_until(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 503, 10, "readyz to say 503")
        ready = httpx.get(url + "/readyz", timeout=5).json()
        assert ready["checks"]["mqtt_connected"] is False
        for event in events:
            assert httpx.post(url + EVENTS_PATH, json=event_json(event), timeout=10).status_code == 202
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert "mqtt_bridge_outbox_depth 5.0" in metrics
        checks = httpx.get(url + "/readyz", timeout=5).json()["checks"]
        assert checks["outbox_depth"] == 5
        assert checks["outbox_oldest_seconds"] > 0
        assert "mqtt_bridge_outbox_oldest_pending_seconds 0.0" not in metrics
        mosquitto.start()
        wait_until(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 15, "reconnection")
        wait_until(
            lambda: "mqtt_bridge_outbox_depth 0.0" in httpx.get(url + "/metrics", timeout=5).text,
            15,
            "the outbox to drain",
        )
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'mqtt_bridge_events_published_total{type="transcription"} 5.0' in metrics
        assert "mqtt_bridge_mqtt_reconnects_total 1.0" in metrics
        assert "mqtt_bridge_mqtt_connected 1.0" in metrics


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_status_is_online_while_connected_and_offline_after_a_clean_stop(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings], protocol: str
) -> None:
    with subscriber(mosquitto.port, [f"{prefix}/status"]) as live:
        with serve(create_app(settings_for(mqtt_protocol=protocol))) as url:
            assert httpx.get(url + "/readyz", timeout=5).json()["checks"]["protocol"] == protocol
            live.wait_for(f"{prefix}/status", lambda m: m.payload == b"online")
            with subscriber(mosquitto.port, [f"{prefix}/status"]) as late:
                birth = late.wait_for(f"{prefix}/status")
                assert (birth.payload, birth.retain) == (b"online", True)
        live.wait_for(f"{prefix}/status", lambda m: m.payload == b"offline")
    with subscriber(mosquitto.port, [f"{prefix}/status"]) as after:
        assert after.wait_for(f"{prefix}/status").payload == b"offline"


def test_the_json_body_policy(settings_for: Callable[..., BridgeSettings]) -> None:
    with serve(create_app(settings_for())) as url, httpx.Client(base_url=url, timeout=10) as client:

        def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
            return client.post(EVENTS_PATH, content=content, headers=headers)

        check_refusals(post, "invalid_event")
        check_accepted(post, lambda: event_json(make_event()), 202)
