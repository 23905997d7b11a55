"""How a broker tells its caller how much audio an answer holds, so the caller never decodes it.

    X-Audio-Seconds        the seconds heard (STT) or made (TTS), when known as the headers go out
    X-Audio-Byte-Rate      a streamed answer of uncompressed audio: body bytes per second of audio,
    X-Audio-Data-Offset    after this many bytes of container header (44 for WAV, 0 for raw PCM)

A streamed compressed answer (mp3, opus, ...) states neither: its length is not known to anyone
until it ends, and an SSE answer states it in its ``done`` event.
"""

from __future__ import annotations

from collections.abc import Mapping

AUDIO_SECONDS_HEADER = "X-Audio-Seconds"
AUDIO_BYTE_RATE_HEADER = "X-Audio-Byte-Rate"
AUDIO_DATA_OFFSET_HEADER = "X-Audio-Data-Offset"


def audio_headers(
    *, seconds: float | None = None, byte_rate: int | None = None, data_offset: int = 0
) -> dict[str, str]:
    """The headers for an answer: its length when known, else how to count it as it streams."""
    if seconds is not None:
        return {AUDIO_SECONDS_HEADER: f"{seconds:.3f}"}
    if byte_rate:
        return {AUDIO_BYTE_RATE_HEADER: str(byte_rate), AUDIO_DATA_OFFSET_HEADER: str(data_offset)}
    return {}


def audio_seconds(headers: Mapping[str, str], body_bytes: int | None = None) -> float | None:
    """The seconds an answer holds, from its headers (and, for a counted stream, its size)."""
    try:
        if AUDIO_SECONDS_HEADER in headers:
            return max(0.0, float(headers[AUDIO_SECONDS_HEADER]))
        if AUDIO_BYTE_RATE_HEADER in headers and body_bytes is not None:
            rate = int(headers[AUDIO_BYTE_RATE_HEADER])
            offset = int(headers.get(AUDIO_DATA_OFFSET_HEADER, "0"))
            return max(0, body_bytes - offset) / rate if rate > 0 else None
    except ValueError:
        return None
    return None


AUDIO_HEADERS = (AUDIO_SECONDS_HEADER, AUDIO_BYTE_RATE_HEADER, AUDIO_DATA_OFFSET_HEADER)
