"""Hold one spoken turn with voicestack through the ``openai`` SDK's Realtime client, nothing else.

    pip install "openai[realtime]"          # the SDK and its websockets dependency
    python realtime_turn.py question.wav    # 24 kHz mono 16-bit WAV (see below for others)
    python realtime_turn.py question.wav --transcribe-only

It streams the recording at real-time pace (server VAD ends the turn on silence), prints the user's
transcript (``--transcribe-only``) or the reply's text as it arrives, and writes the spoken reply to ``reply.wav``.
Set ``VOICESTACK_URL`` (default ``http://127.0.0.1:8000``) and ``VOICESTACK_API_KEY`` when keys are on.
Convert other recordings first, e.g. ``ffmpeg -i in.m4a -ar 24000 -ac 1 -c:a pcm_s16le question.wav``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import wave

from openai import AsyncOpenAI

CHUNK_MS = 100
RATE = 24_000


async def main(path: str, transcribe_only: bool) -> None:
    base = os.environ.get("VOICESTACK_URL", "http://127.0.0.1:8000")
    client = AsyncOpenAI(
        api_key=os.environ.get("VOICESTACK_API_KEY", "none"),
        base_url=base + "/v1",
        websocket_base_url=base.replace("http", "ws", 1) + "/v1",
    )
    with wave.open(path, "rb") as recording:
        if (recording.getframerate(), recording.getnchannels(), recording.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit("the recording must be 24 kHz mono 16-bit PCM WAV (see the docstring)")
        audio = recording.readframes(recording.getnframes())
    audio += bytes(RATE * 2)  # a second of silence, so server VAD hears the turn end

    query = {"intent": "transcription"} if transcribe_only else {}
    async with client.beta.realtime.connect(model="voicestack", extra_query=query) as connection:
        await connection.recv()  # session.created
        vad = {"type": "server_vad", "silence_duration_ms": 500}
        if transcribe_only:
            await connection.transcription_session.update(
                session={
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": vad,
                }
            )
        else:  # the reply's transcript says what was heard
            await connection.session.update(
                session={"input_audio_format": "pcm16", "output_audio_format": "pcm16", "turn_detection": vad}
            )

        async def stream() -> None:
            step = RATE * 2 * CHUNK_MS // 1000
            for start in range(0, len(audio), step):
                chunk = base64.b64encode(audio[start : start + step]).decode()
                await connection.input_audio_buffer.append(audio=chunk)
                await asyncio.sleep(CHUNK_MS / 1000)

        sender = asyncio.create_task(stream())
        reply = bytearray()
        async for event in connection:
            if event.type == "conversation.item.input_audio_transcription.completed":
                print(f"you said: {event.transcript}")
                if transcribe_only:
                    break
            elif event.type == "response.audio_transcript.delta":
                print(event.delta, end="", flush=True)
            elif event.type == "response.audio.delta":
                reply += base64.b64decode(event.delta)
            elif event.type == "response.done":
                print(f"\n[{event.response.status}]")
                break
            elif event.type == "error":
                print(f"error: {event.error.code}: {event.error.message}")
        sender.cancel()

    if reply:
        with wave.open("reply.wav", "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(bytes(reply))
        print(f"reply audio: reply.wav ({len(reply) / 2 / RATE:.1f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav")
    parser.add_argument("--transcribe-only", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.wav, arguments.transcribe_only))
