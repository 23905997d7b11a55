"""Stream: text to audio bytes (or OpenAI's speech events) from the TTS broker as they are made.

The bytes pass through chunk by chunk, never buffered whole here; the event is recorded once the
stream completed, with the seconds the broker's headers (or its ``speech.audio.done`` usage) state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway import brokers
from gateway.deps import Gateway
from gateway.streaming import AudioTap, SseTap, relay
from voicestack_common.contracts.tts import OpenAISpeechRequest, SynthesizeRequest
from voicestack_common.events import utc_now
from voicestack_common.streaming import CutOffStreamingResponse

# What the gateway sends as the model of /api/voice/audio-stream (the broker accepts OpenAI's names).
STREAM_MODEL = "tts-1"
# OpenAI's speech usage counts output audio in 20 ms units.
_TOKENS_PER_SECOND = 50


async def audio_stream(gateway: Gateway, body: SynthesizeRequest, session: str | None) -> CutOffStreamingResponse:
    """The guide's ``/api/voice/audio-stream``: the audio itself, in ``body.format`` (WAV by default)."""
    payload: dict[str, Any] = {
        "model": STREAM_MODEL,
        "input": body.text,
        "response_format": body.format,
        "stream_format": "audio",
    }
    payload.update(
        {
            k: v
            for k, v in (("voice", body.voice), ("speed", body.speed), ("lang_code", body.lang_code))
            if v is not None
        }
    )
    return await _relay_speech(gateway, payload, body.text, body.lang_code, session)


async def openai_speech(gateway: Gateway, body: OpenAISpeechRequest, session: str | None) -> CutOffStreamingResponse:
    """OpenAI's ``audio.speech.create``, its body passed on as the client sent it."""
    return await _relay_speech(gateway, body.upstream_body(), body.input, body.lang_code, session)


async def _relay_speech(
    gateway: Gateway, payload: dict[str, Any], text: str, language: str | None, session: str | None
) -> CutOffStreamingResponse:
    started = utc_now()
    upstream = await brokers.open_speech(gateway.tts, payload, gateway.settings.voice_fallbacks)
    voice = payload.get("voice") if isinstance(payload.get("voice"), str) else None

    def done(seconds: float) -> None:
        _synthesized(gateway, started, session, text, language, voice, seconds)

    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        return relay(
            upstream,
            SseTap(
                lambda events: done(
                    float(events.get("speech.audio.done", {}).get("usage", {}).get("output_tokens", 0))
                    / _TOKENS_PER_SECOND
                )
            ),
        )
    return relay(upstream, AudioTap(upstream.headers, done))


def _synthesized(
    gateway: Gateway,
    started: datetime,
    session: str | None,
    text: str,
    language: str | None,
    voice: str | None,
    seconds: float,
) -> None:
    gateway.events.synthesized(started, session, text=text, seconds=seconds, language=language, voice=voice)
