#!/usr/bin/env python3
"""Hold a spoken conversation with voicestack over its chat WebSocket.

Streams a recorded question (a 16-bit mono WAV, any sample rate) as live audio, shows the partial
transcripts on stderr while it streams, prints what was
heard and the reply as it is written, and saves each piece of the spoken reply as
``reply-N.wav``. Playback is simulated in real time and reported to the server, so that an
interruption (``--interrupt WAV``: speak again while the answer plays) stores the reply as far
as it was heard. Run it again with the printed ``--conversation`` id to carry on.

    uv run python docs/examples/voice_chat.py question.wav
    uv run python docs/examples/voice_chat.py question.wav --interrupt stop.wav --interrupt-after 1.5
    uv run python docs/examples/voice_chat.py next.wav --conversation 3f9c...

Needs only ``websockets`` (installed with voicestack).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

import websockets

FRAME_SECONDS = 0.1


def read_wav(path: Path) -> tuple[bytes, int]:
    """PCM16 mono samples and their rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SystemExit(f"{path}: need a 16-bit mono WAV (ffmpeg -i in -ac 1 -ar 16000 -c:a pcm_s16le out.wav)")
        return wav.readframes(wav.getnframes()), wav.getframerate()


class Microphone:
    """Sends audio in real time as a microphone does: each clip it is given, silence in between.

    The server hears the end of a turn in the audio (an end-of-turn model at each pause, up to 2 s of
    silence for a turn that sounds unfinished): a client that stops sending after speaking may leave
    its turn open.
    """

    def __init__(self, ws: Any, rate: int) -> None:
        self.ws = ws
        self.step = int(rate * FRAME_SECONDS) * 2
        self.clips: asyncio.Queue[bytes] = asyncio.Queue()

    def say(self, pcm: bytes) -> None:
        self.clips.put_nowait(pcm)

    async def run(self) -> None:
        pending = b""
        while True:
            if not pending and not self.clips.empty():
                pending = self.clips.get_nowait()
            frame, pending = pending[: self.step], pending[self.step :]
            await self.ws.send(frame.ljust(self.step, b"\0"))
            await asyncio.sleep(FRAME_SECONDS)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", type=Path, help="16-bit mono WAV with the spoken question")
    parser.add_argument("--url", default="ws://localhost:8000/api/voice/ws/chat")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--conversation", default=None, help="carry on with this conversation id")
    parser.add_argument("--voice", default=None)
    parser.add_argument("--interrupt", type=Path, default=None, help="WAV to speak while the reply plays")
    parser.add_argument("--interrupt-after", type=float, default=1.0, help="seconds of reply played before it")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for reply-N.wav")
    args = parser.parse_args()

    url = args.url + (f"?api_key={args.api_key}" if args.api_key else "")
    question, rate = read_wav(args.question)
    async with websockets.connect(url, max_size=None) as ws:
        start: dict[str, Any] = {"type": "start_conversation", "sample_rate": rate, "format": "wav"}
        if args.conversation:
            start.update(conversation_id=args.conversation, create=True)
        if args.voice:
            start["voice"] = args.voice
        await ws.send(json.dumps(start))
        microphone = Microphone(ws, rate)
        microphone.say(question)
        tasks = [asyncio.create_task(microphone.run())]
        finals_expected = 1 if args.interrupt is None else 2
        finals = 0
        first_audio: float | None = None
        replies = 0

        async def interrupt_later() -> None:
            assert args.interrupt is not None
            await asyncio.sleep(args.interrupt_after)
            pcm, interrupt_rate = read_wav(args.interrupt)
            if interrupt_rate != rate:
                raise SystemExit(f"{args.interrupt}: record it at {rate} Hz, as the question")
            microphone.say(pcm)

        async for raw in ws:
            event = json.loads(raw)
            kind = event["type"]
            if first_audio is not None:  # tell the server how much of the reply has been played
                await ws.send(json.dumps({"type": "playback", "position": time.monotonic() - first_audio}))
            if kind == "conversation.started":
                print(f"conversation {event['conversation_id']} ({event['messages']} earlier messages)")
            elif kind == "partial":  # the words so far, while the question is still being spoken
                print(f"\r(hearing) {event['text']}", end="", file=sys.stderr, flush=True)
            elif kind == "final":
                finals += 1
                print(f"\nyou: {event['text']}")
                print("assistant: ", end="", flush=True)
            elif kind == "reply.started":
                first_audio = None  # positions count from this reply's first audio
            elif kind == "reply.text.delta":
                print(event["text"], end="", flush=True)
            elif kind == "reply.audio":
                if first_audio is None:
                    first_audio = time.monotonic()
                    if args.interrupt is not None and len(tasks) == 1:
                        tasks.append(asyncio.create_task(interrupt_later()))
                path = args.out / f"reply-{replies}-{event['index']}.wav"
                path.write_bytes(base64.b64decode(event["audio_base64"]))
            elif kind == "reply.cancelled":
                print(f"\n[interrupted; heard: {event['heard_text']!r}]")
                first_audio = None
            elif kind == "reply.done":
                timings = event["timings"]
                print(
                    f"\n[{event['audio_seconds']:.1f} s of audio; first audio after {timings.get('first_audio_ms')} ms]"
                )
                replies += 1
                if finals >= finals_expected:
                    break
            elif kind == "error":
                print(f"\nerror: {event['error']['code']}: {event['error']['message']}")
                break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
