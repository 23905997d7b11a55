"""Voice-to-voice latency as a user feels it: end of the user's speech → reply audio, through ``voicestack up``.

    uv run python bench/bench_conversation.py [--turns 12] [--end-of-turn model|silence] [--responder echo]
                                              [--stt-model base] [--compare-models tiny.en,base]
                                              [--compare-responders echo,local] [--json out.json]

The stack is started with ``voicestack up`` (every service a local process, the embedded MQTT broker,
free ports, the test model cache, the TTS broker's cache off) and stopped with SIGTERM. Each client is
a microphone on ``WS /api/voice/ws/chat`` (``start_conversation``: voice af_heart, language en,
``end_of_turn`` model by default, the ``echo`` responder): it streams 100 ms PCM16 16 kHz frames at
real-time pace without a break (a spoken question, then silence) and never sends ``commit``, so the
turn ends as it does for a user, when the STT broker hears that it has. After ``reply.done`` it keeps
streaming silence until the reply has played out (its first audio + ``audio_seconds``), then asks the
next question. Every question is a new text (Kokoro jf_alpha, its own leading and trailing silence cut),
so no reply is ever one the TTS broker has made before.

The clock starts at the end of speech: the last voiced sample of the question. A microphone sends a
frame once its 100 ms are captured, so that sample was spoken when its frame went out (measured) less
the part of the frame after it. Marks, seconds from there: ``speech_stopped``, ``final``, the first
``reply.text.delta`` (first token) and the first ``reply.audio`` (first audio); the gateway's own
``reply.done.timings`` (ms) are summarised too.

The same run measures the bare parts the loop is made of, alternating with the loop turns, at the same
concurrency: the STT broker's ``/v1/transcribe`` of the same utterance, the conversation service's turn
up to its first ``delta``, and the TTS broker's ``/v1/synthesize`` of the reply's first piece as the
gateway cuts it (``SentenceBuffer``). Overhead = first audio - (sum of the parts): it includes the end
of turn (the silence or the turn model's pause), which no bare part has; ``overhead_minus_turn_pause``
also takes away the 200 ms pause at which the final's decode starts. 1 and 4 conversations.

``--stt-model`` makes the STT broker serve that model alone (``STT_MODELS`` and ``STT_MODEL``);
``--compare-models tiny.en,base`` serves several and gives each its own conversation, their turns
alternating, each beside its bare ``/v1/transcribe``. ``--compare-responders echo,local`` does the
same for responders (one conversation each, one at a time, turns alternating, each loop turn beside
its bare parts), so the local model's figure and the echo figure come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from benchkit import emit, machine, summary

from devkit.servers import STACK_SERVICES, free_port, stack_env
from devkit.speech import kokoro_speech
from voicestack_common.audio import resample
from voicestack_common.encode import wav_header
from voicestack_common.text import SentenceBuffer

RATE = 16_000
FRAME = 1_600  # samples: 100 ms, a microphone's frame
LEAD_S = 0.5  # silence before the first question, as when a user starts talking
PLAYED_OUT_MARGIN_S = 0.3  # the gateway's clock starts a little before ours: no barge-in on its last words
START_TIMEOUT_S = 300.0
MARKS = ("speech_stopped", "final", "first_token", "first_audio")
EVENT_MARKS = {
    "speech_stopped": "speech_stopped",
    "final": "final",
    "reply.text.delta": "first_token",
    "reply.audio": "first_audio",
}

# Short spoken questions (4-9 words); template i % 8 with filler i // 8: 80 distinct texts.
TEMPLATES = (
    "What time is it in {city}?",
    "Turn on the {room} lights.",
    "How is the weather in {city} today?",
    "Switch off the heater in the {room} please.",
    "Set a timer for {number} minutes.",
    "Will it rain in {city} tomorrow morning?",
    "Close the {room} blinds before sunset.",
    "Remind me to call {name} at {number}.",
)
FILLERS = {
    "city": ("Tokyo", "Paris", "Lisbon", "Nairobi", "Denver", "Oslo", "Cairo", "Lima", "Seoul", "Dublin"),
    "room": ("kitchen", "bedroom", "garage", "hallway", "office", "porch", "basement", "attic", "study", "nursery"),
    "number": ("five", "ten", "three", "twelve", "seven", "twenty", "four", "eight", "nine", "six"),
    "name": ("Anna", "Peter", "Maria", "David", "Laura", "Samuel", "Grace", "Oliver", "Nina", "Thomas"),
}

TURN_PAUSE_S = 0.2  # the STT broker's default STT_LIVE_TURN_PAUSE_MS


def questions(count: int) -> list[str]:
    """``count`` distinct short questions, consecutive ones of different kinds."""
    most = len(TEMPLATES) * min(len(v) for v in FILLERS.values())
    if count > most:
        raise SystemExit(f"{count} questions asked for, {most} available: ask for fewer turns")
    out = []
    for i in range(count):
        k = i // len(TEMPLATES)
        out.append(TEMPLATES[i % len(TEMPLATES)].format(**{key: values[k] for key, values in FILLERS.items()}))
    return out


def spoken(text: str) -> bytes:
    """The question as PCM16 at 16 kHz, without the engine's leading and trailing silence."""
    samples = resample(kokoro_speech(text, voice="jf_alpha"), RATE).samples
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    voiced = samples[loud[0] : loud[-1] + 1] if len(loud) else samples
    return (np.clip(voiced, -1, 1) * 32767).astype("<i2").tobytes()


class Microphone:
    """100 ms frames at real-time pace for as long as it runs: the questions it is given, else silence."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: deque[tuple[bytes, float | None, asyncio.Future[float] | None]] = deque()

    def say(self, pcm: bytes) -> asyncio.Future[float]:
        """Queue a question; the future gets the wall time (perf_counter) its last voiced sample was spoken."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        step = FRAME * 2
        for start in range(0, len(pcm), step):
            frame = pcm[start : start + step]
            last = start + step >= len(pcm)
            after = (step - len(frame)) / 2 / RATE  # the frame's padding: silence after the last sample
            self.frames.append((frame.ljust(step, b"\0"), after if last else None, done if last else None))
        return done

    async def run(self) -> None:
        began = time.perf_counter()
        silence = bytes(FRAME * 2)
        n = 0
        while True:
            n += 1  # frame n is sent once its 100 ms have been "captured"
            await asyncio.sleep(max(0.0, began + n * FRAME / RATE - time.perf_counter()))
            frame, after, done = self.frames.popleft() if self.frames else (silence, None, None)
            await self.ws.send(frame)
            if done is not None and after is not None:
                done.set_result(time.perf_counter() - after)


class Conversation:
    """One chat socket: a microphone streaming into it, its events read as they come."""

    def __init__(self, ws: Any) -> None:
        self.mic = Microphone(ws)
        self.events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.ws = ws

    async def read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    await self.events.put((time.perf_counter(), json.loads(message)))
        finally:  # a turn waiting for events hears why none will come
            await self.events.put((time.perf_counter(), {"type": "error", "message": "the socket closed"}))

    async def turn(self, pcm: bytes) -> dict[str, Any]:
        """Say ``pcm``; seconds from its end to each mark, the server's timings, and once it has played out."""
        end_of_speech = self.mic.say(pcm)
        seen: dict[str, float] = {}
        heard_early = False
        while True:
            at, event = await asyncio.wait_for(self.events.get(), 120)
            kind = event["type"]
            if kind == "error":
                raise RuntimeError(f"the gateway answered an error: {event}")
            if not end_of_speech.done():  # an utterance ended inside the question: a split turn
                heard_early = heard_early or kind == "final"
                continue
            if kind in EVENT_MARKS:
                seen.setdefault(EVENT_MARKS[kind], at)
            elif kind == "reply.done" and "final" in seen:
                break
        t0 = end_of_speech.result()
        missing = [m for m in MARKS if m not in seen]
        if missing:
            raise RuntimeError(f"the turn ended without {missing}: {event}")
        played_out = max(at, seen["first_audio"] + float(event.get("audio_seconds", 0))) + PLAYED_OUT_MARGIN_S
        await asyncio.sleep(max(0.0, played_out - time.perf_counter()))
        marks: dict[str, Any] = {m: seen[m] - t0 for m in MARKS}
        marks["timings_ms"] = event.get("timings", {})
        marks["split"] = heard_early
        return marks


@asynccontextmanager
async def conversation(url: str, start: dict[str, Any]) -> AsyncIterator[Conversation]:
    """A started conversation whose microphone streams until it is left."""
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start))
        while (answer := json.loads(await ws.recv()))["type"] != "conversation.started":
            if answer["type"] == "error":
                raise RuntimeError(f"start_conversation refused: {answer}")
        talk = Conversation(ws)
        tasks = [asyncio.create_task(talk.mic.run()), asyncio.create_task(talk.read())]
        try:
            yield talk
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def wav(pcm: bytes) -> bytes:
    return wav_header(RATE, len(pcm)) + pcm


async def bare_turn(
    client: httpx.AsyncClient, urls: dict[str, str], pcm: bytes, conversation_id: str, responder: str
) -> dict[str, float]:
    """The same steps called directly, one after the other: transcribe, turn to its first delta, synthesize."""
    t0 = time.perf_counter()
    answer = await client.post(
        f"{urls['stt']}/v1/transcribe", files={"file": ("q.wav", wav(pcm), "audio/wav")}, data={"language": "en"}
    )
    answer.raise_for_status()
    transcribed = time.perf_counter() - t0
    t1 = time.perf_counter()
    buffer = SentenceBuffer()
    pieces: list[str] = []
    first_token = 0.0
    kind = ""
    body = {"text": answer.json()["text"] or "hello", "responder": {"name": responder}}
    async with client.stream("POST", f"{urls['conv']}/v1/conversations/{conversation_id}/turns", json=body) as sse:
        sse.raise_for_status()
        async for line in sse.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "delta":
                first_token = first_token or time.perf_counter() - t1
                pieces += [p.text for p in buffer.push(json.loads(line[5:])["text"])]
            elif line.startswith("data:") and kind == "error":
                raise RuntimeError(f"the conversation service's turn failed: {line}")
    pieces += [p.text for p in buffer.flush()]
    t2 = time.perf_counter()
    spoken_piece = await client.post(f"{urls['tts']}/v1/synthesize", json={"text": pieces[0].strip(), "format": "wav"})
    spoken_piece.raise_for_status()
    synthesized = time.perf_counter() - t2
    return {
        "transcribe": transcribed,
        "first_token": first_token,
        "synthesize": synthesized,
        "sum": transcribed + first_token + synthesized,
    }


def report(loop: list[dict[str, Any]], bare: list[dict[str, float]]) -> dict[str, Any]:
    """min/p50/... of each mark, each bare part, the overhead and the gateway's own timings."""
    result: dict[str, Any] = {f"loop_{m}": summary([t[m] for t in loop]) for m in MARKS}
    result.update(
        {f"bare_{k}": summary([b[k] for b in bare]) for k in ("transcribe", "first_token", "synthesize", "sum")}
    )
    result["overhead_first_audio_minus_bare_sum"] = summary(
        [t["first_audio"] - b["sum"] for t, b in zip(loop, bare, strict=True)]
    )
    # The final's decode starts at the turn pause (STT_LIVE_TURN_PAUSE_MS, 200 ms after the last word),
    # which is the end of turn's own wait: counted as a part, what is left is the loop's own cost.
    result["overhead_minus_turn_pause"] = summary(
        [t["first_audio"] - TURN_PAUSE_S - b["sum"] for t, b in zip(loop, bare, strict=True)]
    )
    names = sorted({k for t in loop for k, v in t["timings_ms"].items() if isinstance(v, int | float)})
    result["gateway_timings_ms"] = {
        k: summary([t["timings_ms"][k] for t in loop if k in t["timings_ms"]]) for k in names
    }
    result["split_turns"] = sum(t["split"] for t in loop)
    return result


async def level(
    urls: dict[str, str], start: dict[str, Any], texts: Iterator[bytes], conversations: int, turns: int
) -> dict[str, Any]:
    """``conversations`` microphones at once, each alternating a loop turn and a bare turn ``turns`` times."""
    loop: list[dict[str, Any]] = []
    bare: list[dict[str, float]] = []
    responder = start["responder"]["name"]

    async def client(number: int) -> None:
        async with conversation(urls["ws"], start) as talk, httpx.AsyncClient(timeout=120, trust_env=False) as http:
            await asyncio.sleep(LEAD_S)
            for turn in range(turns + 1):  # the first round warms up
                pcm = next(texts)
                measured = await talk.turn(pcm)
                parts = await bare_turn(http, urls, pcm, f"bare-{conversations}-{number}", responder)
                if turn:
                    loop.append(measured)
                    bare.append(parts)

    await asyncio.gather(*(client(n) for n in range(conversations)))
    return report(loop, bare)


async def compare_models(
    urls: dict[str, str], start: dict[str, Any], texts: Iterator[bytes], models: list[str], turns: int
) -> dict[str, Any]:
    """One conversation per model; turn by turn the models alternate (in turn-varying order), each loop turn
    followed by the bare ``/v1/transcribe`` of its question with that model."""
    loop: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    bare: dict[str, list[float]] = {m: [] for m in models}
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http, AsyncExitStack() as stack:
        talks = {m: await stack.enter_async_context(conversation(urls["ws"], start | {"model": m})) for m in models}
        for turn in range(turns + 1):  # the first round warms up
            for model in models if turn % 2 else models[::-1]:
                pcm = next(texts)
                measured = await talks[model].turn(pcm)
                t0 = time.perf_counter()
                answer = await http.post(
                    f"{urls['stt']}/v1/transcribe",
                    files={"file": ("q.wav", wav(pcm), "audio/wav")},
                    data={"language": "en", "model": model},
                )
                answer.raise_for_status()
                if turn:
                    loop[model].append(measured)
                    bare[model].append(time.perf_counter() - t0)
    return {
        model: {
            **{f"loop_{m}": summary([t[m] for t in loop[model]]) for m in ("speech_stopped", "final", "first_audio")},
            "bare_transcribe": summary(bare[model]),
        }
        for model in models
    }


async def compare_responders(
    urls: dict[str, str], start: dict[str, Any], texts: Iterator[bytes], responders: list[str], turns: int
) -> dict[str, Any]:
    """One conversation per responder; turn by turn they alternate (in turn-varying order), each loop turn
    followed by its bare parts with that responder."""
    loop: dict[str, list[dict[str, Any]]] = {r: [] for r in responders}
    bare: dict[str, list[dict[str, float]]] = {r: [] for r in responders}
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http, AsyncExitStack() as stack:
        talks = {
            r: await stack.enter_async_context(conversation(urls["ws"], start | {"responder": {"name": r}}))
            for r in responders
        }
        await asyncio.sleep(LEAD_S)
        for turn in range(turns + 1):  # the first round warms up
            for responder in responders if turn % 2 else responders[::-1]:
                pcm = next(texts)
                measured = await talks[responder].turn(pcm)
                parts = await bare_turn(http, urls, pcm, f"bare-{responder}", responder)
                if turn:
                    loop[responder].append(measured)
                    bare[responder].append(parts)
    return {responder: report(loop[responder], bare[responder]) for responder in responders}


@contextmanager
def voicestack_up(env: dict[str, str], home: Path) -> Iterator[dict[str, str]]:
    """``voicestack up`` on free ports, until it is left; stopped with SIGTERM (a stack started without a
    terminal ignores SIGINT)."""
    ports = {name: free_port() for name in STACK_SERVICES}
    env = {
        **stack_env(home, ports),
        "TTS_CACHE_MAX_ENTRIES": "0",  # the bare synthesis repeats the loop's first piece
        **env,
    }
    log_path = home / "voicestack-up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicestack.cli", "up"], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT
        )
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(gateway):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
                raise SystemExit(f"voicestack up did not come up:\n{tail}")
            time.sleep(0.5)
        yield {
            "gateway": gateway,
            "stt": f"http://127.0.0.1:{ports['stt']}",
            "tts": f"http://127.0.0.1:{ports['tts']}",
            "conv": f"http://127.0.0.1:{ports['conversation']}",
            "ws": f"ws://127.0.0.1:{ports['gateway']}/api/voice/ws/chat",
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def turn_checks(stt: str) -> dict[str, float]:
    """The STT broker's end-of-turn model answers so far, by verdict (it moves only with ``end_of_turn=model``)."""
    text = httpx.get(f"{stt}/metrics", timeout=10, trust_env=False).text
    found = {}
    for line in text.splitlines():
        if "turn_checks_total{" in line and not line.startswith("#"):
            found[line.split('verdict="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=12, help="measured turns of the one conversation (4: a quarter)")
    parser.add_argument("--end-of-turn", choices=("model", "silence"), default="model")
    parser.add_argument("--responder", default="echo", help="the conversation service's responder (echo, local...)")
    parser.add_argument("--stt-model", help="the one model the STT broker serves (tiny.en, base, base-q8_0, ...)")
    parser.add_argument(
        "--compare-models", help="comma-separated STT models (tiny.en,base): a conversation each, turns alternating"
    )
    parser.add_argument(
        "--compare-responders", help="comma-separated responders (echo,local): a conversation each, turns alternating"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from conversation.settings import RESPONDERS

    responders = args.compare_responders.split(",") if args.compare_responders else [args.responder]
    for name in responders:
        if name not in RESPONDERS:
            raise SystemExit(f"the conversation service offers no {name!r} responder (it has {', '.join(RESPONDERS)})")
    env = {"CONVERSATION_RESPONDER": responders[0], "CONVERSATION_ALLOWED_RESPONDERS": json.dumps(responders)}
    compared = args.compare_models.split(",") if args.compare_models else []
    if compared:
        env |= {"STT_MODELS": ",".join(compared), "STT_MODEL_TTL": "-1"}
    elif args.stt_model:
        env |= {"STT_MODELS": args.stt_model, "STT_MODEL": args.stt_model}
    quarter = max(1, args.turns // 4)
    if compared:
        needed = (args.turns + 1) * len(compared)
    elif args.compare_responders:
        needed = (args.turns + 1) * len(responders)
    else:
        needed = args.turns + 1 + 4 * (quarter + 1)
    texts = iter([spoken(text) for text in questions(needed)])  # made (and cached) before the stack starts
    start = {
        "type": "start_conversation",
        "voice": "af_heart",
        "language": "en",
        "end_of_turn": args.end_of_turn,
        "responder": {"name": args.responder},
    }
    results: dict[str, Any] = {
        "machine": machine(),
        "stack": "voicestack up",
        "responder": args.compare_responders or args.responder,
        "end_of_turn": args.end_of_turn,
        "stt_model": args.stt_model or "default",
    }
    with tempfile.TemporaryDirectory() as home, voicestack_up(env, Path(home)) as urls:
        checks = turn_checks(urls["stt"])
        if compared:
            results["models"] = asyncio.run(compare_models(urls, start, texts, compared, args.turns))
        elif args.compare_responders:
            results["responders"] = asyncio.run(compare_responders(urls, start, texts, responders, args.turns))
        else:
            results["1_conversation"] = asyncio.run(level(urls, start, texts, 1, args.turns))
            results["4_conversations"] = asyncio.run(level(urls, start, texts, 4, quarter))
        after = turn_checks(urls["stt"])
        results["turn_model_checks"] = {k: v - checks.get(k, 0) for k, v in after.items()}
    emit(results, args.json)


if __name__ == "__main__":
    main()
