"""Talk to voicestack's brokers over Wyoming, as Home Assistant does: describe, synthesize, transcribe.

Start the stack with both Wyoming servers on (docs/wyoming.md):

    STT_WYOMING_ENABLED=true TTS_WYOMING_ENABLED=true uv run voicestack up

then, in another terminal:

    uv run python docs/examples/wyoming_client.py "Please call me back tomorrow morning." -o said.wav

It prints what each server offers, has the TTS broker say the text (written to ``said.wav``)
and the STT broker transcribe that audio back, printing transcript chunks as they arrive.
Only the ``wyoming`` package (PyPI) and the standard library are needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import wave

from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

TIMEOUT_S = 120


def connect(host: str, port: int) -> AsyncTcpClient:
    return AsyncTcpClient(host, port, connect_timeout=10, read_timeout=TIMEOUT_S)


async def describe(host: str, port: int) -> Info:
    async with connect(host, port) as client:
        await client.write_event(Describe().event())
        while (event := await client.read_event()) is not None:
            if Info.is_type(event.type):
                return Info.from_event(event)
    raise RuntimeError(f"{host}:{port} closed the connection before answering describe")


async def synthesize(host: str, port: int, text: str, voice: str | None) -> tuple[bytes, int]:
    """The spoken text as 16-bit mono PCM, and its sample rate."""
    audio, rate = bytearray(), 0
    async with connect(host, port) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None).event())
        while (event := await client.read_event()) is not None:
            if Error.is_type(event.type):
                raise RuntimeError(f"synthesis failed: {Error.from_event(event).text}")
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                audio += chunk.audio
                rate = chunk.rate
            elif AudioStop.is_type(event.type):
                return bytes(audio), rate
    raise RuntimeError("the TTS server closed the connection mid-stream")


async def transcribe(host: str, port: int, audio: bytes, rate: int, language: str) -> str:
    """Send the audio in 100 ms chunks, print transcript chunks as they come, return the transcript."""
    async with connect(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        step = rate // 10 * 2
        for offset in range(0, len(audio), step):
            chunk = AudioChunk(rate=rate, width=2, channels=1, audio=audio[offset : offset + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if Error.is_type(event.type):
                raise RuntimeError(f"transcription failed: {Error.from_event(event).text}")
            if TranscriptChunk.is_type(event.type):
                print(f"  … {TranscriptChunk.from_event(event).text.strip()}")
            elif Transcript.is_type(event.type):
                return Transcript.from_event(event).text
    raise RuntimeError("the STT server closed the connection before the transcript")


async def main(args: argparse.Namespace) -> None:
    stt, tts = await asyncio.gather(describe(args.host, args.stt_port), describe(args.host, args.tts_port))
    for program in stt.asr:
        models = ", ".join(f"{m.name} ({len(m.languages)} languages)" for m in program.models)
        print(f"STT {args.host}:{args.stt_port}: {program.name} {program.version}: {models}")
    for program in tts.tts:
        voices = ", ".join(v.name for v in program.voices)
        print(f"TTS {args.host}:{args.tts_port}: {program.name} {program.version}: {voices}")

    audio, rate = await synthesize(args.host, args.tts_port, args.text, args.voice)
    print(f"said {len(audio) / 2 / rate:.2f} s of audio at {rate} Hz")
    if args.output:
        with wave.open(args.output, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(audio)
        print(f"wrote {args.output}")
    text = await transcribe(args.host, args.stt_port, audio, rate, args.language)
    print(f"heard: {text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="?", default="Please call me back tomorrow morning.")
    parser.add_argument("--host", default=os.environ.get("VOICESTACK_WYOMING_HOST", "127.0.0.1"))
    parser.add_argument("--stt-port", type=int, default=int(os.environ.get("STT_WYOMING_PORT", "10300")))
    parser.add_argument("--tts-port", type=int, default=int(os.environ.get("TTS_WYOMING_PORT", "10200")))
    parser.add_argument("--voice", help="a voice from the TTS info (default: the broker's default voice)")
    parser.add_argument("--language", default="en")
    parser.add_argument("-o", "--output", help="write the synthesized speech to this WAV file")
    try:
        asyncio.run(main(parser.parse_args()))
    except (OSError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
