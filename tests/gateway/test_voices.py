"""Which voice speaks a reply: the user's language mapped to Kokoro's, from the TTS broker's voice details."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.voices import Choice, VoiceCatalog, kokoro_codes, pick
from voicestack_common.contracts.tts import VoiceInfo, VoicesResponse


def info(voice: str, code: str, *, available: bool = True) -> VoiceInfo:
    return VoiceInfo(id=voice, lang_code=code, language="x", language_name="x", available=available)


CATALOG = VoicesResponse(
    voices=["af_heart", "bf_emma", "ef_dora", "em_alex", "ff_siwis", "zf_xiaobei", "jf_alpha"],
    default_voice="af_heart",
    service="Kokoro TTS",
    details=[
        info("af_heart", "a"),
        info("bf_emma", "b"),
        info("ef_dora", "e"),
        info("em_alex", "e"),
        info("ff_siwis", "f"),
        info("zf_xiaobei", "z", available=False),
        info("jf_alpha", "j"),
    ],
)


@pytest.mark.parametrize(
    ("language", "codes"),
    [("en", ("a", "b")), ("es", ("e",)), ("FR", ("f",)), ("pt-BR", ("p",)), ("zh", ("z",)), ("de", ()), (None, ())],
)
def test_whisper_languages_to_kokoro_codes(language: str | None, codes: tuple[str, ...]) -> None:
    assert kokoro_codes(language) == codes


def test_the_default_voice_when_it_speaks_the_language() -> None:
    assert pick(CATALOG, ("a", "b"), None) == Choice("af_heart", "a")
    assert pick(CATALOG, ("a", "b"), "bf_emma") == Choice("bf_emma", "b")  # British English is English
    assert pick(CATALOG, ("e",), "em_alex") == Choice("em_alex", "e")


def test_else_the_first_available_voice_of_the_language() -> None:
    assert pick(CATALOG, ("e",), None) == Choice("ef_dora", "e")
    assert pick(CATALOG, ("f",), "af_heart") == Choice("ff_siwis", "f")
    assert pick(CATALOG, ("z",), None) is None  # its only voice lacks the text front end
    assert pick(CATALOG, ("h",), None) is None


def test_without_details_the_voice_names_say_the_language() -> None:
    bare = VoicesResponse(voices=["jf_alpha", "jm_kumo"], default_voice="jf_alpha", service="Kokoro TTS")
    assert pick(bare, ("j",), None) == Choice("jf_alpha", "j")
    assert pick(bare, ("e",), None) is None


class Broker:
    """The TTS broker's voice list over a mock transport; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.fail:
            return httpx.Response(503, json={"error": {"code": "not_ready", "message": "loading"}})
        return httpx.Response(200, json=CATALOG.model_dump())


def catalog_on(broker: Broker) -> VoiceCatalog:
    from prometheus_client import CollectorRegistry

    from gateway.metrics import GatewayMetrics
    from gateway.replicas import ReplicaSet

    client = httpx.AsyncClient(transport=httpx.MockTransport(broker.handler))
    tts = ReplicaSet("tts", ["http://tts.test"], client, GatewayMetrics(CollectorRegistry()), 0, 1)
    return VoiceCatalog(tts)


def test_the_catalog_is_cached_refreshed_after_a_failure_and_falls_back() -> None:
    async def scenario() -> list[Any]:
        broker = Broker()
        voices = catalog_on(broker)
        seen: list[Any] = [await voices.for_language("es", None), await voices.for_language("fr", "af_heart")]
        seen.append(broker.calls)  # one fetch for both
        seen.append(await voices.for_language("de", "af_heart"))  # not spoken: no fetch needed
        voices.forget()
        broker.fail = True
        seen.append(await voices.for_language("es", "af_heart"))  # the list is not to be had: the default
        broker.fail = False
        seen.append(await voices.for_language("es", "af_heart"))  # the failure was not cached
        seen.append(broker.calls)
        # a voice the session chose reads the text as the language spoken
        seen.append(
            [
                await voices.code_for("en", "bf_emma"),
                await voices.code_for("en", "jf_alpha"),
                await voices.code_for("es", "jf_alpha"),
                await voices.code_for("zh", "jf_alpha"),  # no front end here: the broker's choice
                await voices.code_for("de", "jf_alpha"),
            ]
        )
        await voices.tts.client.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        Choice("ef_dora", "e"),
        Choice("ff_siwis", "f"),
        1,
        Choice("af_heart", None),
        Choice("af_heart", None),
        Choice("ef_dora", "e"),
        3,
        ["b", "a", "e", None, None],
    ]
