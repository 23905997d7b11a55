"""Which voice speaks a reply: one of the language the user spoke, from the TTS broker's voice details.

Whisper names a language (``es``); Kokoro names its languages by one letter (``e``), each voice's first.
A reply follows the user's language unless its session fixed a voice or a ``lang_code``: the configured
default voice when it speaks that language, else the first available voice of it. A language Kokoro
does not speak (``de``) keeps the default voice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gateway import brokers
from gateway.replicas import ReplicaSet
from voicestack_common.contracts.tts import VoicesResponse, kokoro_codes
from voicestack_common.errors import VoicestackError

__all__ = ["CATALOG_TTL", "Choice", "VoiceCatalog", "kokoro_codes", "pick"]

logger = logging.getLogger(__name__)

# Voices change only when the TTS broker restarts with other settings: a few minutes' staleness is
# harmless, and a failed synthesis with a chosen voice drops the cache at once.
CATALOG_TTL = 300.0


@dataclass(frozen=True, slots=True)
class Choice:
    """The voice and Kokoro language code a reply is spoken with (``None``: the broker's default)."""

    voice: str | None
    lang_code: str | None


def pick(catalog: VoicesResponse, codes: tuple[str, ...], default: str | None) -> Choice | None:
    """The default voice when it speaks one of ``codes``, else the first available voice that does;
    ``None`` when no voice does."""
    details = {info.id: info for info in catalog.details}
    wanted = default or catalog.default_voice

    def code_of(voice: str) -> str | None:
        info = details.get(voice)
        if info is not None:
            return info.lang_code if info.available else None
        return voice[:1] if "_" in voice else None  # Kokoro's names: language, gender, "_", name

    if wanted and (code := code_of(wanted)) in codes:
        return Choice(wanted, code)
    for code in codes:
        for voice in catalog.voices:
            if code_of(voice) == code:
                return Choice(voice, code)
    return None


class VoiceCatalog:
    """The TTS broker's voice list, cached for ``CATALOG_TTL`` seconds."""

    def __init__(self, tts: ReplicaSet, ttl: float = CATALOG_TTL) -> None:
        self.tts = tts
        self.ttl = ttl
        self._catalog: VoicesResponse | None = None
        self._fetched = 0.0

    async def get(self) -> VoicesResponse:
        """The voice list (from the cache while it is fresh)."""
        if self._catalog is None or time.monotonic() - self._fetched > self.ttl:
            self._catalog = await brokers.voices(self.tts)
            self._fetched = time.monotonic()
        return self._catalog

    def forget(self) -> None:
        """Drop the cache (a synthesis with a voice it offered failed)."""
        self._catalog = None

    async def code_for(self, language: str | None, voice: str | None) -> str | None:
        """Kokoro's code to read text in ``language`` with a voice the session chose (its own code when it
        speaks the language); ``None`` (the broker's choice) when Kokoro cannot speak it here."""
        codes = kokoro_codes(language)
        if not codes:
            return None
        try:
            catalog = await self.get()
        except VoicestackError as exc:
            logger.warning("voices: the TTS broker's list is unavailable (%s)", exc.code)
            self.forget()
            return None
        spoken = {info.lang_code for info in catalog.details if info.available} or set(codes)
        usable = [code for code in codes if code in spoken]
        if voice and voice[:1] in usable:
            return voice[:1]
        return usable[0] if usable else None

    async def for_language(self, language: str | None, default: str | None) -> Choice:
        """The voice for a reply to speech in ``language``: ``default`` (with the broker's default code)
        when Kokoro does not speak it, or the voice list cannot be had."""
        fallback = Choice(default, None)
        codes = kokoro_codes(language)
        if not codes:
            return fallback
        try:
            found = pick(await self.get(), codes, default)
        except VoicestackError as exc:
            logger.warning("voices: the TTS broker's list is unavailable (%s); keeping the default voice", exc.code)
            self.forget()
            return fallback
        return found or fallback
