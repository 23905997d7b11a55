"""Synthesize: text to base64 audio in JSON through the TTS broker, one or a batch; the voice list."""

from __future__ import annotations

import asyncio

from gateway import brokers
from gateway.deps import Gateway
from voicestack_common.contracts.tts import SynthesizeRequest, SynthesizeResponse, VoicesResponse
from voicestack_common.errors import InvalidRequest, VoicestackError
from voicestack_common.events import utc_now


async def synthesize(gateway: Gateway, body: SynthesizeRequest, session: str | None) -> SynthesizeResponse:
    """One synthesis, and its event."""
    started = utc_now()
    result = await brokers.synthesize(gateway.tts, body.upstream_body(), gateway.settings.voice_fallbacks)
    gateway.events.synthesized(
        started,
        session,
        text=body.text,
        seconds=result.audio_duration_seconds,
        language=body.lang_code,
        voice=result.voice,
    )
    return result


async def synthesize_batch(
    gateway: Gateway, items: list[SynthesizeRequest], caller: str, session: str | None
) -> list[SynthesizeResponse]:
    """Several syntheses, ``batch_concurrency`` at a time, answered in order; the first failure
    (by position) fails the batch, its ``details.index`` saying which item."""
    settings = gateway.settings
    if len(items) > settings.batch_max_items:
        raise InvalidRequest(
            f"a batch holds at most {settings.batch_max_items} requests, got {len(items)}", code="batch_too_large"
        )
    if not items:
        return []
    gateway.charge("synthesize", caller, len(items))
    slots = asyncio.Semaphore(settings.batch_concurrency)
    results: list[SynthesizeResponse | None] = [None] * len(items)

    async def one(index: int, item: SynthesizeRequest) -> None:
        async with slots:
            try:
                results[index] = await synthesize(gateway, item, session)
            except VoicestackError as exc:
                exc.message = f"item {index}: {exc.message}"
                exc.details = {"index": index, **(exc.details if isinstance(exc.details, dict) else {})}
                raise

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(items):
                group.create_task(one(index, item))
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None
    return [result for result in results if result is not None]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure of the earliest item, so the answer does not depend on timing."""
    flat: list[BaseException] = []
    for exc in group.exceptions:
        flat.extend(exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc])
    known = [e for e in flat if isinstance(e, VoicestackError)]
    if not known:
        return flat[0]
    return min(known, key=lambda e: e.details.get("index", 0) if isinstance(e.details, dict) else 0)


async def voices(gateway: Gateway) -> VoicesResponse:
    """The voices the TTS broker offers."""
    return await brokers.voices(gateway.tts)
