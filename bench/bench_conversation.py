"""Voice-to-voice latency: end of the user's speech → first byte of reply audio, through the voice loop.

    uv run python bench/bench_conversation.py [--turns 12] [--pace 1.0] [--no-partials] [--stt-model base]
                                              [--compare-models tiny.en,base] [--json out.json]

Every service runs as its own process (STT broker, TTS broker, conversation service with the
``echo`` responder on SQLite, gateway). A turn on ``WS /api/voice/ws/chat`` streams a spoken
question (16 kHz PCM16, 100 ms frames at real-time pace, as a microphone would: the loop's live
session sends ``partial`` transcripts meanwhile) and then ``commit``, the push-to-talk end of
speech (with silence endpointing the core waits ``silence_ms`` more); the clock starts at
``commit`` and stops at the first ``reply.audio``, with the ``final`` transcript and the first
``reply.text.delta`` (the responder's first token) on the way.

The same run measures the bare parts the loop is made of, alternating with the loop, at the same
concurrency: the STT broker's ``/v1/transcribe`` of the same utterance, the conversation service's
turn up to its first ``delta`` event, and the TTS broker's ``/v1/synthesize`` of the reply's first
piece. Overhead = loop - (sum of the parts). 1 and 4 concurrent conversations.

``--stt-model`` makes the STT broker serve that model alone (``STT_MODELS`` and ``STT_MODEL``):
``tiny.en`` or ``base`` (or a quantized id such as ``base-q8_0``), so that the end of speech →
final (``loop_final``) of the two can be compared, run after run on the same idle machine; unset,
the broker chooses as it does by default (``STT_MODEL=auto``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import websockets
from benchkit import emit, machine, service, summary

from devkit.speech import TEST_CACHE, kokoro_speech
from voicestack_common.audio import resample
from voicestack_common.encode import wav_header
from voicestack_common.text import SentenceBuffer

QUESTIONS = [
    "What time is it in Tokyo?",
    "Turn on the kitchen lights.",
    "How is the weather today?",
    "Please call me back tomorrow.",
]
CHUNK = 3200


async def loop_turn(ws: Any, pcm: bytes, pace: float) -> dict[str, float]:
    """One spoken turn; seconds from commit to the final, the first text and the first audio."""
    began = time.perf_counter()
    for number, start in enumerate(range(0, len(pcm), CHUNK)):
        await ws.send(pcm[start : start + CHUNK])
        if pace > 0:  # frame n goes out when its audio would have been spoken
            await asyncio.sleep(max(0.0, began + (number + 1) * CHUNK / 32_000 / pace - time.perf_counter()))
    t0 = time.perf_counter()
    await ws.send(json.dumps({"type": "commit"}))
    marks: dict[str, float] = {}
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 120))
        now = time.perf_counter() - t0
        kind = event["type"]
        if kind == "partial":
            marks["partials"] = marks.get("partials", 0) + 1
        elif kind == "final":
            marks.setdefault("final", now)
        elif kind == "reply.text.delta":
            marks.setdefault("first_text", now)
        elif kind == "reply.audio":
            marks.setdefault("first_audio", now)
        elif kind == "reply.done":
            return marks
        elif kind == "error":
            raise RuntimeError(event)


async def bare_turn(
    client: httpx.AsyncClient, stt: str, conv: str, tts: str, wav: bytes, conversation: str
) -> dict[str, float]:
    """The same steps called directly, one after the other: transcribe, turn to its first delta, synthesize."""
    t0 = time.perf_counter()
    # The loop's language: with STT_MODEL=auto the broker would give a request with none to base.
    answer = await client.post(
        f"{stt}/v1/transcribe", files={"file": ("q.wav", wav, "audio/wav")}, data={"language": "en"}
    )
    text = answer.json()["text"]
    transcribed = time.perf_counter() - t0
    t1 = time.perf_counter()
    buffer = SentenceBuffer()
    pieces: list[str] = []
    first_token = 0.0
    kind = ""
    async with client.stream("POST", f"{conv}/v1/conversations/{conversation}/turns", json={"text": text}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "delta":
                if not first_token:
                    first_token = time.perf_counter() - t1
                pieces += [p.text for p in buffer.push(json.loads(line[5:])["text"])]
    pieces += [p.text for p in buffer.flush()]
    first_piece = pieces[0]
    t2 = time.perf_counter()
    await client.post(f"{tts}/v1/synthesize", json={"text": first_piece.strip(), "format": "wav"})
    synthesized = time.perf_counter() - t2
    return {
        "transcribe": transcribed,
        "first_token": first_token,
        "synthesize": synthesized,
        "sum": transcribed + first_token + synthesized,
    }


async def level(
    urls: dict[str, str],
    clips: list[tuple[bytes, bytes]],
    conversations: int,
    turns: int,
    pace: float,
    partials: bool = True,
) -> dict[str, Any]:
    """``conversations`` clients at once, each alternating a loop turn and a bare turn ``turns`` times."""
    loop: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []

    async def client(number: int) -> None:
        async with (
            websockets.connect(urls["ws"], max_size=None) as ws,
            httpx.AsyncClient(timeout=120, trust_env=False) as http,
        ):
            start = {"type": "start_conversation", "voice": "af_heart", "language": "en", "partials": partials}
            await ws.send(json.dumps(start))
            while json.loads(await ws.recv())["type"] != "conversation.started":
                pass
            for turn in range(turns + 1):  # the first round warms up
                pcm, wav = clips[(number + turn) % len(clips)]
                measured = await loop_turn(ws, pcm, pace)
                parts = await bare_turn(http, urls["stt"], urls["conv"], urls["tts"], wav, f"bare-{number}")
                if turn:
                    loop.append(measured)
                    bare.append(parts)

    await asyncio.gather(*(client(n) for n in range(conversations)))
    keys = ("final", "first_text", "first_audio")
    result: dict[str, Any] = {f"loop_{k}": summary([m[k] for m in loop]) for k in keys}
    result.update(
        {f"bare_{k}": summary([b[k] for b in bare]) for k in ("transcribe", "first_token", "synthesize", "sum")}
    )
    overhead = [m["first_audio"] - b["sum"] for m, b in zip(loop, bare, strict=True)]
    result["overhead_first_audio_minus_bare_sum"] = summary(overhead)
    result["partials_per_turn"] = summary([m.get("partials", 0) for m in loop])
    return result


async def compare_models(
    urls: dict[str, str], clips: list[tuple[bytes, bytes]], models: list[str], turns: int, pace: float, partials: bool
) -> dict[str, Any]:
    """One conversation per model on one broker serving them all; turn by turn the models alternate (in
    turn-varying order), each loop turn followed by the bare ``/v1/transcribe`` of the same clip with that
    model, so that the machine's drift hits every model alike."""
    loop: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    bare: dict[str, list[float]] = {m: [] for m in models}
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
        sockets = {m: await websockets.connect(urls["ws"], max_size=None) for m in models}
        try:
            for model, ws in sockets.items():
                start = {"type": "start_conversation", "voice": "af_heart", "language": "en", "partials": partials}
                await ws.send(json.dumps(start | {"model": model}))
                while json.loads(await ws.recv())["type"] != "conversation.started":
                    pass
            for turn in range(turns + 1):  # the first round warms up
                pcm, wav = clips[turn % len(clips)]
                order = models if turn % 2 else models[::-1]
                for model in order:
                    measured = await loop_turn(sockets[model], pcm, pace)
                    t0 = time.perf_counter()
                    answer = await http.post(
                        f"{urls['stt']}/v1/transcribe",
                        files={"file": ("q.wav", wav, "audio/wav")},
                        data={"language": "en", "model": model},
                    )
                    answer.raise_for_status()
                    if turn:
                        loop[model].append(measured)
                        bare[model].append(time.perf_counter() - t0)
        finally:
            for ws in sockets.values():
                await ws.close()
    return {
        model: {
            "loop_final": summary([m["final"] for m in loop[model]]),
            "loop_first_audio": summary([m["first_audio"] for m in loop[model]]),
            "bare_transcribe": summary(bare[model]),
        }
        for model in models
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=12, help="measured turns per conversation at level 1")
    parser.add_argument("--pace", type=float, default=1.0, help="audio streaming speed (1 = real time, 0 = at once)")
    parser.add_argument("--no-partials", action="store_true", help="start conversations with partials off")
    parser.add_argument(
        "--stt-model", help="the one model the STT broker serves (tiny.en, base, base-q8_0, ...); unset: its default"
    )
    parser.add_argument(
        "--compare-models",
        help="comma-separated STT models (tiny.en,base): one broker serves them all and their turns alternate; "
        "end of speech -> final and first audio per model, beside each model's bare transcription",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clips = []
    for question in QUESTIONS:
        pcm = resample(kokoro_speech(question), 16_000).to_pcm16()
        clips.append((pcm, wav_header(16_000, len(pcm)) + pcm))
    models = str(TEST_CACHE / "models")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as home:
        stt_env = {"STT_CACHE_DIR": models, "STT_WORKERS": "1"}
        if args.stt_model:
            stt_env |= {"STT_MODELS": args.stt_model, "STT_MODEL": args.stt_model}
        compared = args.compare_models.split(",") if args.compare_models else []
        if compared:
            stt_env |= {"STT_MODELS": ",".join(compared), "STT_MODEL_TTL": "-1"}
        stt = stack.enter_context(service("stt_broker", "STT_PORT", stt_env))
        tts = stack.enter_context(
            service("tts_broker", "TTS_PORT", {"TTS_CACHE_DIR": models, "TTS_CACHE_MAX_ENTRIES": "0"})
        )
        conv = stack.enter_context(
            service("conversation", "CONVERSATION_PORT", {"CONVERSATION_DATABASE_URL": f"sqlite:///{home}/c.sqlite3"})
        )
        gateway = stack.enter_context(
            service(
                "gateway",
                "GATEWAY_PORT",
                {
                    "GATEWAY_STT_URLS": stt,
                    "GATEWAY_TTS_URLS": tts,
                    "GATEWAY_CONVERSATION_URLS": conv,
                    "GATEWAY_EVENTS_URL": "",
                },
            )
        )
        urls = {"stt": stt, "tts": tts, "conv": conv, "ws": gateway.replace("http", "ws") + "/api/voice/ws/chat"}
        partials = not args.no_partials
        results: dict[str, Any] = {
            "machine": machine(),
            "responder": "echo",
            "pace": args.pace,
            "partials": partials,
            "stt_model": args.stt_model or "default",
        }
        if compared:
            results["models"] = asyncio.run(compare_models(urls, clips, compared, args.turns, args.pace, partials))
            emit(results, args.json)
            return
        results["1_conversation"] = asyncio.run(level(urls, clips, 1, args.turns, args.pace, partials))
        results["4_conversations"] = asyncio.run(level(urls, clips, 4, max(2, args.turns // 4), args.pace, partials))
    emit(results, args.json)


if __name__ == "__main__":
    main()
