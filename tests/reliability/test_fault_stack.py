"""Faults with the real processes: two STT replicas (whisper.cpp), two TTS replicas (Kokoro) and the
gateway, each its own process; replicas SIGKILLed under load, a stalling upstream, a gateway restart."""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from devkit.mqtt_kit import wait_until
from devkit.servers import ServiceProcess
from devkit.speech import TEST_CACHE
from tests.reliability.faults import Load, StallingProxy
from tests.reliability.figures import record

pytestmark = [pytest.mark.engine, pytest.mark.slow]

# Generous: a 504 on a loaded CI machine would measure the machine, not the failover.
SLOW = "300"
# Long enough (about four minutes of speech) that the broker is still synthesizing when the stream is
# cut, even on a fast machine where socket buffers hold what the unread stream made so far.
LONG_TEXT = " ".join(f"Sentence number {n} is here to keep the voice busy for a while." for n in range(1, 50))


def stt_replica(workdir: Path) -> ServiceProcess:
    return ServiceProcess(
        "stt_broker", "STT", workdir, cache_dir=str(TEST_CACHE / "models"), workers="1", threads="1",
        max_queue="32", log_level="WARNING",
    )  # fmt: skip


def tts_replica(workdir: Path) -> ServiceProcess:
    return ServiceProcess(
        "tts_broker", "TTS", workdir, cache_dir=str(TEST_CACHE / "models"), threads="1", max_queue="32",
        log_level="WARNING",
    )  # fmt: skip


def gateway_process(workdir: Path, stt: str, tts: str, **settings: str) -> ServiceProcess:
    values = {
        "stt_urls": stt,
        "tts_urls": tts,
        "conversation_urls": "",
        "events_url": "",
        "stt_timeout": SLOW,
        "tts_timeout": SLOW,
        "health_interval": "0.5",
        "health_cache_seconds": "0",
        "log_level": "WARNING",
        **settings,
    }
    return ServiceProcess("gateway", "GATEWAY", workdir, **values)


@dataclass
class Stack:
    stt: list[ServiceProcess]
    tts: list[ServiceProcess]
    gateway: ServiceProcess
    workdir: Path

    def all_healthy(self, kinds: tuple[str, ...] = ("sst_replicas", "tts_replicas")) -> bool:
        health = httpx.get(self.gateway.url + "/api/voice/health", timeout=30).json()
        return all(r["healthy"] for kind in kinds for r in health[kind])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("fault-stack")
    stt = [stt_replica(workdir), stt_replica(workdir)]
    tts = [tts_replica(workdir), tts_replica(workdir)]
    gateway = gateway_process(workdir, ",".join(s.url for s in stt), ",".join(t.url for t in tts))
    try:
        for process in (*stt, *tts, gateway):
            process.launch()
        for process in (*stt, *tts, gateway):
            process.wait_ready()
        running = Stack(stt, tts, gateway, workdir)
        wait_until(running.all_healthy, 60, "every replica healthy at the gateway")
        yield running
    finally:
        for process in (gateway, *stt, *tts):
            process.kill()


def _close_code(ws: ClientConnection) -> int:
    """Read until the server closes; the code of its close frame."""
    try:
        while True:
            ws.recv(timeout=60)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"  # noqa: PT017
        return closed.rcvd.code


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_killing_one_of_two_replicas_under_load_is_invisible_to_clients(stack: Stack) -> None:
    base = stack.gateway.url
    speech = httpx.post(base + "/api/voice/synthesize", json={"text": "Hello there."}, timeout=300)
    assert speech.status_code == 200, speech.text
    wav = base64.b64decode(speech.json()["audio_base64"])

    def request(client: int, n: int) -> str:
        if n % 2:
            body = {"text": f"Client {client} says number {n}."}
            response = httpx.post(base + "/api/voice/synthesize", json=body, timeout=600)
        else:
            files = {"file": ("hello.wav", wav, "audio/wav")}
            response = httpx.post(base + "/api/voice/transcribe", files=files, timeout=600)
        return str(response.status_code) if response.status_code == 200 else f"{response.status_code} {response.text}"

    with Load(request, clients=4) as load:
        load.run_until(4, 600)
        stack.stt[0].kill()
        stack.tts[0].kill()
        load.run_until(8, 600)
    outcomes = dict(load.outcomes)
    errors = sum(n for outcome, n in outcomes.items() if outcome != "200")
    retries = Counter[str]()
    for line in httpx.get(base + "/metrics", timeout=30).text.splitlines():
        if line.startswith("gateway_upstream_retries_total{"):
            retries[line.split('"')[1]] += int(float(line.split()[-1]))
    assert errors == 0, outcomes
    assert load.failures == []

    # Back to two TTS replicas (the killed STT one stays down: nothing below needs it), then a synthesis
    # stream whose replica dies mid-way.
    stack.tts[0].start()
    wait_until(lambda: stack.all_healthy(("tts_replicas",)), 60, "the restarted replica healthy at the gateway")
    body = {"model": "tts-1", "input": LONG_TEXT, "voice": "alloy", "stream_format": "sse"}
    with httpx.stream("POST", base + "/v1/audio/speech", json=body, timeout=300) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        busy: list[ServiceProcess] = []

        def find_busy() -> bool:
            busy[:] = [
                t for t in stack.tts if _metric(httpx.get(t.url + "/metrics", timeout=30).text, "tts_workers_busy") > 0
            ]
            return len(busy) == 1

        wait_until(find_busy, 60, "the replica synthesizing the stream")
        busy[0].kill()
        events = [json.loads(first[5:]), *(json.loads(line[5:]) for line in lines if line.startswith("data:"))]
    assert events[-1]["type"] == "error", events[-1]
    assert events[-1]["error"]["code"] == "upstream_unavailable"
    after = httpx.post(base + "/api/voice/synthesize", json={"text": "And the next one works."}, timeout=300)
    assert after.status_code == 200, after.text
    record(
        "faults",
        "one of two STT and TTS replicas SIGKILLed under 4-client load",
        {
            "requests": sum(outcomes.values()),
            "client_visible_errors": errors,
            "gateway_retries": dict(retries),
            "stream_cut_events_before_error": len(events) - 1,
            "stream_cut_last_event": events[-1]["error"]["code"],
            "next_request_status": after.status_code,
        },
    )


def test_a_stalling_or_trickling_broker_gets_504_and_connections_do_not_pile_up(stack: Stack) -> None:
    tts = next(t for t in stack.tts if t.alive)  # the test before may have left one dead
    with StallingProxy(tts.port) as proxy:
        gateway = gateway_process(stack.workdir, stack.stt[1].url, proxy.url, tts_timeout="3", stt_timeout=SLOW)
        gateway.start()
        try:
            proxy.stall = b"/v1/synthesize"

            def request(client: int, n: int) -> str:
                body = {"text": f"Client {client} waits {n}."}
                response = httpx.post(gateway.url + "/api/voice/synthesize", json=body, timeout=120)
                return f"{response.status_code} {response.json()['error']['code']}"

            with Load(request, clients=4) as load:
                load.run_until(16, 300)
            outcomes = dict(load.outcomes)
            assert set(outcomes) == {"504 upstream_timeout"}, outcomes
            # Every stalled connection was given up by the gateway; at most idle keep-alives stay.
            wait_until(lambda: proxy.open <= 2, 30, "the stalled connections closed")
            # Bounded by the clients, not by the requests: one per waiting client and the health probes,
            # with room for a given-up connection whose close the proxy has not read yet.
            assert proxy.peak_open <= 2 * 4 + 2 < load.total
            proxy.stall = None
            # Bytes that trickle: every read within the timeout, the whole answer far beyond it.
            proxy.trickle = b"/v1/synthesize"
            trickled = [
                httpx.post(gateway.url + "/api/voice/synthesize", json={"text": f"Slowly {n}."}, timeout=120)
                for n in range(2)
            ]
            assert [(r.status_code, r.json()["error"]["code"]) for r in trickled] == [(504, "upstream_timeout")] * 2
            proxy.trickle = None
            wait_until(lambda: proxy.open <= 2, 30, "the trickling connections closed")
            assert httpx.get(gateway.url + "/api/voice/voices", timeout=120).status_code == 200
            record(
                "faults",
                "stalling and trickling TTS broker behind a TCP proxy (gateway timeout 3 s)",
                {
                    "requests": sum(outcomes.values()),
                    "answered_504": outcomes["504 upstream_timeout"],
                    "proxy_connections_accepted": proxy.accepted,
                    "proxy_connections_stalled": proxy.stalled,
                    "trickled_requests_answered_504": len(trickled),
                    "proxy_peak_open": proxy.peak_open,
                    "proxy_open_after": proxy.open,
                },
            )
        finally:
            gateway.kill()


def test_a_gateway_restart_closes_websockets_with_a_code_clients_reconnect_on(stack: Stack) -> None:
    ws_url = stack.gateway.url.replace("http://", "ws://")
    routes = ["/api/voice/ws/chat"] * 3 + ["/api/voice/ws/transcribe"]
    sockets = [connect(ws_url + route, open_timeout=60) for route in routes]
    try:
        for ws in sockets[:3]:
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=60))["type"] == "pong"
        # A live transcription in progress: the gateway holds a session at an STT broker for it.
        live = sockets[3]
        live.send(json.dumps({"type": "start", "format": "pcm16", "partials": False}))
        assert json.loads(live.recv(timeout=120))["type"] == "ready"
        live.send(bytes(16000 * 2))  # a second of silence at 16 kHz
        stopping = time.monotonic()
        assert stack.gateway.stop()
        shutdown_s = round(time.monotonic() - stopping, 1)
        codes = []
        for ws in sockets:
            codes.append(_close_code(ws))
    finally:
        for ws in sockets:
            ws.close()
    assert set(codes) <= {1001, 1012}, codes
    stack.gateway.start()
    reconnected = 0
    for route in routes[:3]:
        with connect(ws_url + route, open_timeout=60) as ws:
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=60))["type"] == "pong"
            reconnected += 1
    record(
        "faults",
        "gateway restarted (SIGTERM) with WebSocket clients",
        {
            "clients": len(sockets),
            "close_codes": dict(Counter(str(c) for c in codes)),
            "reconnected": reconnected,
            "shutdown_s": shutdown_s,
        },
    )
