"""POST /v1/publish (allow-listed, durable, deduplicated) and tool_call events, against a real mosquitto."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from pydantic import ValidationError

from devkit.mqtt_kit import Mosquitto, Subscriber, event_json, make_event, subscriber, wait_until
from devkit.servers import serve
from mqtt_bridge.app import create_app
from mqtt_bridge.outbox import SCHEMA_VERSION, OutboxStore, OutboxTooNew
from mqtt_bridge.settings import BridgeSettings
from voicestack_common.events import EVENTS_PATH, MAX_PUBLISH_PAYLOAD_BYTES, PUBLISH_PATH, new_event_id


class QosSubscriber(Subscriber):
    """A recording subscriber that also notes the QoS each message arrived with."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.qos: dict[tuple[str, bytes], int] = {}
        super().__init__(port, topics)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.qos[(message.topic, bytes(message.payload))] = message.qos
        super()._on_message(client, userdata, message)


def body(topic: str, payload: str = "ON", **fields: Any) -> dict[str, Any]:
    """A publish request with a fresh event id."""
    return {"event_id": f"tool-{new_event_id()}", "topic": topic, "payload": payload, **fields}


def metric(url: str, line: str) -> float:
    """The value of one sample line (``name{labels}``) of /metrics."""
    for text in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if text.startswith(line + " "):
            return float(text.rsplit(" ", 1)[1])
    raise AssertionError(f"{line} not in /metrics")


def test_an_allowed_message_arrives_with_its_payload_qos_and_retain_flag(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    home = f"{prefix}-home"
    settings = settings_for(publish_allow=f"{home}/+/light/set, {home}/scene/#")
    light, scene = f"{home}/kitchen/light/set", f"{home}/scene/evening"
    text = json.dumps({"state": "ON", "note": "Küche 💡"})
    sub = QosSubscriber(mosquitto.port, [f"{home}/#"])
    try:
        with serve(create_app(settings)) as url:
            first = body(light, text, qos=0)
            response = httpx.post(url + PUBLISH_PATH, json=first, timeout=10)
            assert response.status_code == 202, response.text
            assert response.json() == {"event_id": first["event_id"], "duplicate": False}
            second = body(scene, "dim", retain=True)
            assert httpx.post(url + PUBLISH_PATH, json=second, timeout=10).status_code == 202
            got = sub.wait_for(light)
            assert got.payload == text.encode()
            assert sub.wait_for(scene).payload == b"dim"
            assert sub.qos == {(light, text.encode()): 0, (scene, b"dim"): 1}
            # Live deliveries never carry the flag: a late subscriber shows what the broker retained.
            with subscriber(mosquitto.port, [light, scene]) as late:
                retained = late.wait_for(scene)
                assert (retained.payload, retained.retain) == (b"dim", True)
                late.publish(light, b"barrier")  # after the retained ones, on the same connection
                late.wait_for(light, lambda m: m.payload == b"barrier")
                assert [m.payload for m in late.on(light)] == [b"barrier"]
            assert metric(url, 'mqtt_bridge_publishes_total{outcome="accepted"}') == 2
            wait_until(lambda: metric(url, 'mqtt_bridge_events_published_total{type="publish"}') == 2, 5, "the PUBACKs")
    finally:
        sub.close()


def test_refused_topics_and_bad_requests_store_and_publish_nothing(
    mosquitto: Mosquitto, prefix: str, tmp_path: Path, settings_for: Callable[..., BridgeSettings]
) -> None:
    home = f"{prefix}-home"
    # The allow-list admits the bridge's own subtree and Home Assistant's: reserved topics stay refused.
    settings = settings_for(publish_allow=[f"{home}/+/light/set", f"{prefix}/#", "homeassistant/#"])
    refusals = [
        (f"{home}/door/lock/set", "topic_not_allowed"),
        (f"{home}/kitchen/light/set/extra", "topic_not_allowed"),
        (f"{prefix}/status", "topic_reserved"),
        (f"{prefix}/health", "topic_reserved"),
        (f"{prefix}/health/gateway", "topic_reserved"),
        (f"{prefix}/transcripts", "topic_reserved"),
        (f"{prefix}/tool_calls", "topic_reserved"),
        (f"{prefix}/cmd/synthesize", "topic_reserved"),
        ("homeassistant/device/voicestack/config", "topic_reserved"),
        ("homeassistant/status", "topic_reserved"),
    ]
    invalid = [
        ("a + wildcard", body(f"{home}/+/light/set"), 422, "invalid_publish"),
        ("a # wildcard", body(f"{home}/#"), 422, "invalid_publish"),
        ("a $ topic", body("$SYS/broker/uptime"), 422, "invalid_publish"),
        ("NUL", body(f"{home}/a\0b/light/set"), 422, "invalid_publish"),
        # mosquitto drops the connection on these: stored, they would stall the outbox.
        ("a control character", body(f"{home}/a\x01b/light/set"), 422, "invalid_publish"),
        ("a C1 control character", body(f"{home}/a\x85b/light/set"), 422, "invalid_publish"),
        ("a noncharacter", body(f"{home}/a\ufffeb/light/set"), 422, "invalid_publish"),
        ("empty topic", body(""), 422, "invalid_publish"),
        ("topic over 256", body(f"{home}/" + "t" * 256), 422, "invalid_publish"),
        ("QoS 2", body(f"{home}/kitchen/light/set", qos=2), 422, "invalid_publish"),
        ("unknown field", body(f"{home}/kitchen/light/set", priority=1), 422, "invalid_publish"),
        ("no event id", {"topic": f"{home}/kitchen/light/set", "payload": "ON"}, 422, "invalid_publish"),
        ("bad event id", {**body(f"{home}/kitchen/light/set"), "event_id": "a/b c"}, 422, "invalid_publish"),
        ("payload not a string", body(f"{home}/kitchen/light/set", payload={"on": True}), 422, "invalid_publish"),
        ("lone surrogate", body(f"{home}/kitchen/light/set", "\ud800"), 422, "invalid_publish"),
        (
            "payload over the limit in bytes, not characters",
            body(f"{home}/kitchen/light/set", "é" * (MAX_PUBLISH_PAYLOAD_BYTES // 2 + 1)),
            413,
            "payload_too_large",
        ),
        (
            "payload over the limit",
            body(f"{home}/kitchen/light/set", "x" * (MAX_PUBLISH_PAYLOAD_BYTES + 1)),
            413,
            "payload_too_large",
        ),
    ]
    with (
        subscriber(mosquitto.port, [f"{home}/#", f"{prefix}/#", "homeassistant/#"]) as sub,
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        for topic, code in refusals:
            response = client.post(PUBLISH_PATH, json=body(topic))
            assert response.status_code == 403, f"{topic}: {response.text}"
            assert response.json()["error"]["code"] == code, topic
            assert topic in response.json()["error"]["message"], topic
        for what, request, status, code in invalid:
            # httpx's json= cannot carry a lone surrogate; json.dumps escapes it as JSON allows.
            response = client.post(
                PUBLISH_PATH, content=json.dumps(request), headers={"content-type": "application/json"}
            )
            assert response.status_code == status, f"{what}: {response.text}"
            assert response.json()["error"]["code"] == code, what
        at_the_limit = body(f"{home}/hall/light/set", "x" * MAX_PUBLISH_PAYLOAD_BYTES)
        mine = body(f"{prefix}/lights/scene", "evening")  # under the prefix, but none of the bridge's topics
        for accepted in (at_the_limit, mine):
            assert client.post(PUBLISH_PATH, json=accepted).status_code == 202
        # Messages go out in acceptance order: once the last is here, nothing refused was published.
        sub.wait_for(mine["topic"])
        assert [(m.topic, len(m.payload)) for m in sub.messages if m.topic.startswith(home)] == [
            (at_the_limit["topic"], MAX_PUBLISH_PAYLOAD_BYTES)
        ]
        assert [m.payload for m in sub.on(mine["topic"])] == [b"evening"]
        # Every refused request carried "ON"; the bridge's own messages (status, health) never do.
        assert not [m.topic for m in sub.messages if m.payload == b"ON"]
        assert metric(url, 'mqtt_bridge_publishes_total{outcome="refused"}') == len(refusals)
        assert metric(url, 'mqtt_bridge_publishes_total{outcome="accepted"}') == 2
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
        assert {row[0] for row in db.execute("SELECT event_id FROM seen")} == {
            at_the_limit["event_id"],
            mine["event_id"],
        }


def test_an_empty_allow_list_refuses_every_topic(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    settings = settings_for()
    assert settings.publish_allow == []
    with subscriber(mosquitto.port, ["#"]) as sub, serve(create_app(settings)) as url:
        for topic in (f"{prefix}-home/kitchen/light/set", "a", "x/y/z"):
            response = httpx.post(url + PUBLISH_PATH, json=body(topic), timeout=10)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "topic_not_allowed"
            assert "allow-list is empty" in response.json()["error"]["message"]
        # An event still goes out; had a refused message been stored, it would have gone out before.
        event = make_event()
        assert httpx.post(url + EVENTS_PATH, json=event_json(event), timeout=10).status_code == 202
        sub.wait_for(f"{prefix}/transcripts")
        assert not [m for m in sub.messages if m.topic in ("a", "x/y/z") or m.topic.startswith(f"{prefix}-home")]


def test_a_repeated_event_id_is_published_once(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    topic = f"{prefix}-home/kitchen/light/set"
    request = body(topic, "ON")
    with subscriber(mosquitto.port, [topic]) as sub, serve(create_app(settings_for(publish_allow=topic))) as url:
        first = httpx.post(url + PUBLISH_PATH, json=request, timeout=10)
        again = httpx.post(url + PUBLISH_PATH, json={**request, "payload": "OFF"}, timeout=10)
        assert (first.status_code, again.status_code) == (202, 202)
        assert first.json() == {"event_id": request["event_id"], "duplicate": False}
        assert again.json() == {"event_id": request["event_id"], "duplicate": True}
        sub.wait_for(topic)
        barrier = body(topic, "barrier")
        assert httpx.post(url + PUBLISH_PATH, json=barrier, timeout=10).json()["duplicate"] is False
        sub.wait_for(topic, lambda m: m.payload == b"barrier")
        assert [m.payload for m in sub.on(topic)] == [b"ON", b"barrier"]
        assert metric(url, 'mqtt_bridge_publishes_total{outcome="duplicate"}') == 1
        assert metric(url, 'mqtt_bridge_publishes_total{outcome="accepted"}') == 2


def test_a_message_accepted_while_the_broker_is_down_survives_a_restart_and_arrives(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    topic = f"{prefix}-home/scene/away"
    settings = settings_for(publish_allow=topic)
    request = body(topic, "arm", retain=True)  # retained: the subscriber may come after the bridge
    with serve(create_app(settings)) as url:
        mosquitto.stop()
        wait_until(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 503, 10, "readyz to say 503")
        response = httpx.post(url + PUBLISH_PATH, json=request, timeout=10)
        assert response.status_code == 202, response.text
        assert httpx.get(url + "/readyz", timeout=5).json()["checks"]["outbox_depth"] == 1
    mosquitto.start()
    with serve(create_app(settings)) as url, subscriber(mosquitto.port, [topic]) as sub:
        got = sub.wait_for(topic)
        assert (got.payload, got.retain) == (b"arm", True)
        wait_until(lambda: httpx.get(url + "/readyz", timeout=5).json()["checks"]["outbox_depth"] == 0, 5, "drain")
        again = httpx.post(url + PUBLISH_PATH, json=request, timeout=10)
        assert again.json() == {"event_id": request["event_id"], "duplicate": True}


def test_a_tool_call_event_goes_to_tool_calls(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    event = make_event(
        "published to home/kitchen/light/set",
        type="tool_call",
        tool="set_light",
        call_id="call_8f2a",
        arguments={"topic": "home/kitchen/light/set", "payload": "ON", "nested": {"level": [1, 2]}},
        status="ok",
        duration_seconds=0.042,
        conversation_id="conv-1",
        message_id="msg-7",
        language=None,
        model=None,
        confidence=None,
    )
    failed = make_event(
        "the MQTT bridge refused the topic",
        type="tool_call",
        tool="set_light",
        call_id="call_9",
        arguments={},
        status="refused",
        error_code="topic_not_allowed",
        duration_seconds=0.01,
    )
    with subscriber(mosquitto.port, [f"{prefix}/#"]) as sub, serve(create_app(settings_for())) as url:
        for each in (event, failed):
            assert httpx.post(url + EVENTS_PATH, json=event_json(each), timeout=10).status_code == 202
        too_long = {**event_json(make_event(type="tool_call")), "status": "s" * 17}
        refused = httpx.post(url + EVENTS_PATH, json=too_long, timeout=10)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_event")
        sub.wait_for(f"{prefix}/tool_calls", lambda m: m.json()["event_id"] == failed.event_id)
        received = [m.json() for m in sub.on(f"{prefix}/tool_calls")]
        assert received == [event_json(event), event_json(failed)]
        assert received[0]["arguments"]["nested"] == {"level": [1, 2]}
        assert (received[1]["status"], received[1]["error_code"]) == ("refused", "topic_not_allowed")
        assert not sub.on(f"{prefix}/synthesis")
        assert not sub.on(f"{prefix}/replies")


OLD_SCHEMA = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'inflight')),
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted_at REAL NOT NULL
);
CREATE TABLE seen (event_id TEXT PRIMARY KEY, accepted_at REAL NOT NULL) WITHOUT ROWID;
INSERT INTO outbox (event_id, kind, payload, state, accepted_at)
    VALUES ('old-event', 'reply', X'7B7D', 'inflight', 1.0);
INSERT INTO seen VALUES ('old-event', 1.0);
"""


def test_an_outbox_of_the_previous_schema_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = OutboxStore(path)
    assert store._db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert store.accept("msg-00001", "publish", b"raw", time.time(), topic="home/a", qos=0, retain=True)
    assert store.accept("old-event", "reply", b"{}", time.time()) is False
    old, new = store.claim(10)
    assert (old.event_id, old.kind, old.topic, old.qos, old.retain, old.attempts) == (
        "old-event",
        "reply",
        None,
        1,
        False,
        1,
    )
    assert (new.payload, new.topic, new.qos, new.retain) == (b"raw", "home/a", 0, True)
    store.close()
    reopened = OutboxStore(path)  # migrations run once
    assert [e.topic for e in reopened.claim(10)] == [None, "home/a"]
    reopened._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    reopened.close()
    with pytest.raises(OutboxTooNew):
        OutboxStore(path)


def test_the_allow_list_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(**values: Any) -> BridgeSettings:
        return BridgeSettings(_env_file=None, **values)  # type: ignore[call-arg]

    assert load().publish_allow == []
    monkeypatch.setenv("MQTT_BRIDGE_PUBLISH_ALLOW", " home/+/light/set , home/scene/# ,")
    assert load().publish_allow == ["home/+/light/set", "home/scene/#"]
    monkeypatch.delenv("MQTT_BRIDGE_PUBLISH_ALLOW")
    monkeypatch.setenv("MQTT_PUBLISH_ALLOW", '["#"]')  # the shorter spelling docs/conversations.md uses
    assert load().publish_allow == ["#"]
    for bad in ("home/light#", "home/#/set", "home/li+ght", ""):
        with pytest.raises(ValidationError, match="not an MQTT topic filter"):
            load(publish_allow=[bad])
