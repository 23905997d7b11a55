"""WebSocket fuzzing (hypothesis) on every WebSocket route of the gateway, served by uvicorn.

Whatever a client sends (random or malformed JSON, wrong types, binary frames, unknown or
out-of-order message types, huge frames, thousands of tiny frames), each frame is answered with
an ``error`` event or a normal answer, or the socket is closed with a clean code; the socket is
never left hanging and the server keeps serving.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from tests.reliability.figures import record

WS_ROUTES = ["/api/voice/ws/chat"]
CLEAN_CLOSE = {1000, 1001, 1008, 1009}
ANSWER_TYPES = {"error", "pong", "transcription", "audio"}
RECV_TIMEOUT = 300.0  # generous: a shared machine; a hang still fails the test

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Messages close to the protocol, with fields of the wrong type or out of range (never a valid
# inference request: those are the end-to-end tests' job, and would make this slow).
near_protocol = st.fixed_dictionaries(
    {"type": st.sampled_from(["transcribe", "synthesize", "ping", "pong", "start", "stop", "audio", "commit", ""])},
    optional={
        "id": json_values,
        "text": st.one_of(st.just(""), st.integers(), st.lists(st.text(max_size=3), max_size=2), st.none()),
        "audio_base64": st.one_of(st.text(max_size=30), st.integers(), st.just("")),
        "speed": st.one_of(st.floats(allow_nan=False), st.text(max_size=3)),
        "voice": st.one_of(st.text(max_size=10), st.integers()),
        "language": json_values,
    },
)
frames = st.one_of(
    near_protocol.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(min_value=33, max_value=3000).map(lambda depth: "[" * depth + "]" * depth),
)


class Probe:
    """One WebSocket connection and what came back on it."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, max_size=None, open_timeout=60)
        self.answers = 0
        self.closed_with: int | None = None

    def send(self, frame: str | bytes) -> None:
        if self.closed_with is None:
            try:
                self.ws.send(frame)
            except ConnectionClosed as exc:
                self._closed(exc)

    def alive(self, token: str) -> bool:
        """Ping and read answers until our pong; False (with a clean close code checked) if it closed."""
        self.send(json.dumps({"type": "ping", "id": token}))
        while self.closed_with is None:
            try:
                raw = self.ws.recv(timeout=RECV_TIMEOUT)
            except ConnectionClosed as exc:
                self._closed(exc)
                break
            assert isinstance(raw, str), "answers are text frames"
            answer = json.loads(raw)
            assert answer.get("type") in ANSWER_TYPES, answer
            if answer["type"] == "error":
                assert set(answer["error"]) >= {"code", "message"}, answer
            self.answers += 1
            if answer == {"type": "pong", "id": token}:
                return True
        return False

    def _closed(self, exc: ConnectionClosed) -> None:
        code = exc.rcvd.code if exc.rcvd is not None else None
        assert code in CLEAN_CLOSE, f"closed without a clean close frame: {code}"
        self.closed_with = code

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def ws_base(fuzz_gateway_url: str) -> str:
    return fuzz_gateway_url.replace("http://", "ws://")


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.parametrize("route", WS_ROUTES)
def test_random_frames_get_answers_or_a_clean_close(ws_base: str, route: str) -> None:
    counts = {"sequences": 0, "frames": 0, "clean_closes": 0}

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(sequence=st.lists(frames, min_size=1, max_size=12))
    def run(sequence: list[str | bytes]) -> None:
        probe = Probe(ws_base + route)
        try:
            for frame in sequence:
                probe.send(frame)
            counts["sequences"] += 1
            counts["frames"] += len(sequence)
            if not probe.alive(f"seq-{counts['sequences']}"):
                counts["clean_closes"] += 1
        finally:
            probe.close()

    run()
    record("ws_fuzz", route, counts)
    # The server still serves after all that.
    probe = Probe(ws_base + route)
    assert probe.alive("after")
    probe.close()


@pytest.mark.slow
@pytest.mark.parametrize("route", WS_ROUTES)
def test_edge_frames(ws_base: str, route: str) -> None:
    url = ws_base + route
    probe = Probe(url)
    for index in range(3000):  # thousands of tiny frames
        probe.send(json.dumps({"type": "ping", "id": index}))
    assert probe.alive("tiny")
    assert probe.answers == 3001
    for frame in (
        b"\x00\xff" * 100,
        "",
        " ",
        "null",
        "[]",
        "{}",
        '{"type": 1}',
        "\ud800".encode("utf-8", "surrogatepass"),
    ):
        probe.send(frame)
    assert probe.alive("odd")
    probe.close()
    # A frame larger than the server takes (uvicorn's ws_max_size, 16 MiB in tests) is refused with 1009.
    big = Probe(url)
    big.send("x" * (17 * 1024 * 1024))
    assert not big.alive("big")
    assert big.closed_with == 1009
    big.close()
    after = Probe(url)
    assert after.alive("after")
    after.close()
    record("ws_edges", route, {"tiny_frames": 3000, "oversized_frame_close": 1009})


LIVE_EVENTS = {"ready", "speech_started", "partial", "speech_stopped", "final", "error", "checkpoint", "closed"}
# 1003/1007: data the session cannot read (a documented answer to garbage); 1013: try again later.
LIVE_CLEAN_CLOSE = {1000, 1003, 1007, 1008, 1009, 1013}
live_frames = st.one_of(
    st.binary(max_size=3200),  # raw audio, or garbage
    st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "audio", "commit", "clear", "ping", "", "stop2"])},
        optional={
            "audio_base64": st.one_of(st.text(max_size=40), st.integers()),
            "format": st.one_of(st.sampled_from(["pcm16", "webm", "ogg", "wav", "mp3"]), st.integers()),
            "sample_rate": st.one_of(st.integers(min_value=-10, max_value=200_000), st.text(max_size=3)),
            "language": json_values,
        },
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
)


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("fixture", "route"), [("fuzz_gateway_url", "/api/voice/ws/transcribe"), ("stt_url", "/v1/stream")]
)
def test_live_transcription_frames_end_in_a_clean_close(
    fixture: str, route: str, request: pytest.FixtureRequest
) -> None:
    """Random audio and out-of-order control messages, then ``stop``: known events, then a clean close."""
    ws_base = request.getfixturevalue(fixture).replace("http://", "ws://")
    counts = {"sequences": 0, "frames": 0, "events": 0}

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(sequence=st.lists(live_frames, min_size=1, max_size=8))
    def run(sequence: list[str | bytes]) -> None:
        with connect(ws_base + route, max_size=None, open_timeout=60) as ws:
            closed: int | None = None
            try:
                for frame in [*sequence, json.dumps({"type": "stop"})]:
                    ws.send(frame)
            except ConnectionClosed as exc:
                closed = exc.rcvd.code if exc.rcvd is not None else None
            while closed is None:
                try:
                    raw = ws.recv(timeout=RECV_TIMEOUT)
                except ConnectionClosed as exc:
                    closed = exc.rcvd.code if exc.rcvd is not None else None
                    break
                assert isinstance(raw, str), "events are text frames"
                event = json.loads(raw)
                assert event.get("type") in LIVE_EVENTS, event
                counts["events"] += 1
            assert closed in LIVE_CLEAN_CLOSE, f"closed without a clean close frame: {closed}"
        counts["sequences"] += 1
        counts["frames"] += len(sequence) + 1

    run()
    record("ws_fuzz", route, counts)


# ``WS /v1/realtime``: OpenAI's Realtime events, malformed. Every answer is an OpenAI-style event;
# an ``error`` carries ``error.type``/``code``/``message`` (and the client's ``event_id``).
REALTIME_TYPES = [
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.cancel",
    "output_audio_buffer.clear",
    "session.created",
    "",
]
REALTIME_CLEAN_CLOSE = {1000, 1001, 1008, 1009, 1013}
realtime_frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(REALTIME_TYPES)},
        optional={
            "event_id": json_values,
            "session": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "modalities": json_values,
                        "voice": json_values,
                        "input_audio_format": st.one_of(st.sampled_from(["pcm16", "g711_ulaw", "mp3"]), json_values),
                        "turn_detection": json_values,
                        "instructions": json_values,
                        "temperature": st.one_of(st.floats(allow_nan=False), st.text(max_size=3)),
                    },
                ),
            ),
            "audio": st.one_of(st.text(max_size=40), st.integers(), st.binary(max_size=30).map(lambda b: b.hex())),
            "item": json_values,
            "item_id": json_values,
            "content_index": json_values,
            "audio_end_ms": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=3)),
            "previous_item_id": json_values,
        },
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=120),
    st.binary(max_size=120),
    st.integers(min_value=33, max_value=3000).map(lambda depth: "{" + '"a":[' * depth + "]" * depth + "}"),
)


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(900)
@pytest.mark.parametrize("intent", ["conversation", "transcription"])
def test_realtime_events_get_error_events_or_a_clean_close(ws_base: str, intent: str) -> None:
    """Random and malformed events on ``/v1/realtime``: every answer an OpenAI-style event, the socket
    answering a probe afterwards (or closed with a clean code), the server still serving."""
    url = ws_base + "/v1/realtime" + ("?intent=transcription" if intent == "transcription" else "")
    counts = {"sequences": 0, "frames": 0, "events": 0, "errors": 0, "clean_closes": 0}

    def probe(ws: Connection, token: str) -> bool:
        """An unknown event with our ``event_id``; read until its ``error``. False if the socket closed."""
        try:
            ws.send(json.dumps({"type": "probe.unknown", "event_id": token}))
            while True:
                raw = ws.recv(timeout=RECV_TIMEOUT)
                assert isinstance(raw, str), "events are text frames"
                event = json.loads(raw)
                assert isinstance(event, dict), event
                assert isinstance(event.get("type"), str), event
                counts["events"] += 1
                if event["type"] == "error":
                    error = event["error"]
                    assert {"type", "code", "message", "event_id"} <= set(error), event
                    assert isinstance(error["message"], str), event
                    assert error["message"], event
                    counts["errors"] += 1
                    if error["event_id"] == token:
                        assert error["code"] == "invalid_value", event
                        return True
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            assert code in REALTIME_CLEAN_CLOSE, f"closed without a clean close frame: {code}"
            return False

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(sequence=st.lists(realtime_frames, min_size=1, max_size=10))
    def run(sequence: list[str | bytes]) -> None:
        with connect(url, max_size=None, open_timeout=60) as ws:
            try:
                for frame in sequence:
                    ws.send(frame)
            except ConnectionClosed:
                pass
            counts["sequences"] += 1
            counts["frames"] += len(sequence)
            if not probe(ws, f"probe-{counts['sequences']}"):
                counts["clean_closes"] += 1

    run()
    record("ws_fuzz", f"/v1/realtime ({intent})", counts)
    with connect(url, max_size=None, open_timeout=60) as ws:
        assert probe(ws, "after")
