"""The bridge's outbox cannot be written (disk full, read-only): 503 so the sender keeps the event.

The fault is ``RLIMIT_FSIZE`` lowered to 0 on the running bridge (``prlimit``, unprivileged, works
in CI containers): every write that would grow a file fails with ``EFBIG`` (Python ignores
``SIGXFSZ``), as on a full disk; raising the limit again is "space returns".
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import httpx
import pytest

from devkit.mqtt_kit import BridgeProcess, Mosquitto, event_json, make_event, subscriber, wait_until
from gateway.events import EventSender
from gateway.metrics import GatewayMetrics
from tests.reliability.figures import record
from voicestack_common.events import EVENTS_PATH, SpeechEvent

pytestmark = pytest.mark.slow


def _limit_file_size(pid: int, size: int | None) -> None:
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if size is None else size, hard))


def test_an_unwritable_outbox_answers_503_and_recovers(tmp_path: Path, prefix: str, mosquitto: Mosquitto) -> None:
    bridge = BridgeProcess(tmp_path, mosquitto.url, prefix)
    topic = f"{prefix}/transcripts"
    with subscriber(mosquitto.port, [topic]) as sub:
        bridge.start()
        try:
            before = [make_event(f"before {i}") for i in range(10)]
            during = [make_event(f"during {i}") for i in range(10)]
            with httpx.Client(base_url=bridge.url, timeout=30) as client:
                for event in before:
                    assert client.post(EVENTS_PATH, json=event_json(event)).status_code == 202
                wait_until(lambda: len(sub.on(topic)) >= len(before), 30, "the events before the fault")

                _limit_file_size(bridge.pid, 0)
                refused = [client.post(EVENTS_PATH, json=event_json(event)) for event in during]
                assert [r.status_code for r in refused] == [503] * len(during), [r.text for r in refused]
                assert {r.json()["error"]["code"] for r in refused} == {"outbox_unavailable"}
                assert client.get("/healthz").status_code == 200  # the process lives through it

                # The gateway's sender keeps what the bridge refused, and delivers it once space returns.
                sender_kept, delivered_late = asyncio.run(_send_through_the_fault(bridge, during))
            received = [m.json()["event_id"] for m in sub.on(topic)]
            wanted = {e.event_id for e in before + during}
            wait_until(lambda: {m.json()["event_id"] for m in sub.on(topic)} >= wanted, 30, "every event")
            received = [m.json()["event_id"] for m in sub.on(topic)]
            lost = len(wanted - set(received))
            assert lost == 0
            assert sender_kept == len(during)
            record(
                "faults",
                "outbox unwritable (RLIMIT_FSIZE 0)",
                {
                    "events_posted": len(before) + len(during),
                    "answered_503": len(refused),
                    "kept_by_gateway_sender": sender_kept,
                    "delivered_after_recovery": delivered_late,
                    "lost": lost,
                    "duplicated": len(received) - len(set(received)),
                },
            )
            assert bridge.stop()
        finally:
            bridge.kill()


async def _send_through_the_fault(bridge: BridgeProcess, events: list[SpeechEvent]) -> tuple[int, int]:
    """Queue ``events`` in the gateway's EventSender while the outbox is unwritable; then lift the limit."""
    from prometheus_client import CollectorRegistry

    async with httpx.AsyncClient(timeout=10) as client:
        sender = EventSender(bridge.url, client, GatewayMetrics(CollectorRegistry()), queue_size=100)
        task = asyncio.create_task(sender.run())
        try:
            for event in events:
                sender.submit(event)
            await asyncio.sleep(1.5)  # several refused attempts
            kept = sender.pending
            _limit_file_size(bridge.pid, None)
            for _ in range(600):
                if not sender.pending:
                    break
                await asyncio.sleep(0.1)
            assert sender.pending == 0, "the sender never got its events accepted"
            return kept, sender.sent
        finally:
            task.cancel()
