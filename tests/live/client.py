"""Driving a live session from a test: send frames (optionally at a pace), collect every event."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from devkit.live_audio import Speech
from devkit.speech import words


class Socket(Protocol):
    def send_bytes(self, data: bytes) -> None: ...
    def send_text(self, data: str) -> None: ...
    def receive(self) -> Any: ...


@dataclass
class Outcome:
    """Everything a session sent, and how the socket closed."""

    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return self.of("final")

    def error_codes(self) -> list[str]:
        return [e["error"]["code"] for e in self.of("error")]


def send_audio(
    ws: Socket, frames: Iterable[bytes], *, seconds_per_frame: float = 0.0, base64_json: bool = False
) -> None:
    """Send frames; ``seconds_per_frame`` > 0 paces them (real time when it equals the frame's length)."""
    started = time.monotonic()
    for index, frame in enumerate(frames):
        if base64_json:
            ws.send_text(json.dumps({"type": "audio", "audio_base64": base64.b64encode(frame).decode()}))
        else:
            ws.send_bytes(frame)
        if seconds_per_frame:
            delay = started + (index + 1) * seconds_per_frame - time.monotonic()
            if delay > 0:
                time.sleep(delay)


Wait = tuple[float, Callable[[Outcome], bool]]


def send_in_real_time(
    ws: Socket, frames: Sequence[bytes], frame_s: float, waits: Sequence[Wait], outcome: Outcome
) -> None:
    """Send at real-time pace; at each ``(audio time, condition)`` of ``waits``, read events until the
    condition holds.

    On an idle machine the condition holds long before its time; on a loaded one the pause stands
    in for the decodes the machine could not do in time (tests never depend on its speed).
    """
    started = time.monotonic()
    pending = sorted(waits, key=lambda wait: wait[0])
    for index, frame in enumerate(frames):
        ws.send_bytes(frame)
        while pending and (index + 1) * frame_s >= pending[0][0]:
            condition = pending.pop(0)[1]
            while not condition(outcome):
                message = ws.receive()
                assert message.get("text") is not None, message
                outcome.events.append(json.loads(message["text"]))
            started = time.monotonic() - (index + 1) * frame_s
        delay = started + (index + 1) * frame_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def partials_every_sentence(speech: Speech) -> list[Wait]:
    """Waits that make a loaded machine keep up: before each sentence the previous finals are out,
    and one second into it, its first partial is."""
    waits: list[Wait] = []
    for index, (start, _) in enumerate(speech.spans):
        waits.append((start + 0.2, lambda o, n=index: len(o.finals) >= n))
        waits.append((start + 1.0, lambda o, n=index: len({e["utterance_id"] for e in o.of("partial")}) > n))
    return waits


def collect(ws: Socket, outcome: Outcome | None = None) -> Outcome:
    """Read until ``closed`` (then the socket's close) or the socket closing."""
    outcome = outcome or Outcome()
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            outcome.close_code = message.get("code")
            return outcome
        if message.get("text") is not None:
            outcome.events.append(json.loads(message["text"]))


def check_sentences(outcome: Outcome, speech: Speech, *, partials: bool) -> None:
    """One final per sentence with its words (tolerant), in order; partials before each final if asked."""
    finals = outcome.finals
    assert len(finals) == len(speech.sentences), [f["text"] for f in finals]
    for final, text, (start, end) in zip(finals, speech.sentences, speech.spans, strict=True):
        expected, got = words(text), words(final["text"])
        missing = [w for w in expected if w not in got]
        assert len(missing) <= 1, (text, final["text"])
        assert final["start"] <= start + 0.1, (final, start)
        assert final["end"] >= end - 0.1, (final, end)
        assert final["language"] == "en"
        assert 0 < final["confidence"] <= 1
    ids = [f["utterance_id"] for f in finals]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    stopped = {e["utterance_id"]: e for e in outcome.of("speech_stopped")}
    for final, (_, end) in zip(finals, speech.spans, strict=True):
        # The endpoint sits after the voice ends, by at most the end padding plus a VAD window or two.
        assert end - 0.15 <= stopped[final["utterance_id"]]["end"] <= end + 0.45
    if partials:
        for final in finals:
            before = outcome.events[: outcome.events.index(final)]
            mine = [e for e in before if e["type"] == "partial" and e["utterance_id"] == final["utterance_id"]]
            assert mine, f"no partial before final {final['utterance_id']}"
            for partial in mine:
                assert words(partial["text"]) == words(partial["stable"]) + words(partial["unstable"])


def first(events: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["type"] == kind)


def turn_checks(stt_url: str) -> float:
    """How often the STT broker's end-of-turn model has been asked (all verdicts)."""
    lines = httpx.get(stt_url + "/metrics", timeout=10).text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith("stt_live_turn_checks_total"))
