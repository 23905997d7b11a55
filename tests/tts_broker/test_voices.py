"""Voice blends as Kokoro-FastAPI writes them, OpenAI's voice names, and the default voice."""

from __future__ import annotations

import pytest

from tts_broker.engines.base import VoiceBlend
from tts_broker.settings import DEFAULT_OPENAI_VOICES
from tts_broker.voices import VoiceCatalog, build_catalog, parse_blend
from voicestack_common.errors import InvalidRequest

BUNDLED = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
FULL = ("af_alloy", "af_bella", "af_heart", "af_sky", "am_adam", "am_echo", "bm_george")


def catalog(
    voices: tuple[str, ...] = BUNDLED, default: str = "af_heart", offered: list[str] | None = None
) -> VoiceCatalog:
    built, _ = build_catalog(voices, default_voice=default, offered=offered, openai_voices=DEFAULT_OPENAI_VOICES)
    return built


def test_plain_and_equal_blends() -> None:
    assert parse_blend("af_bella") == (("af_bella", 1.0),)
    assert parse_blend("af_bella+af_sky") == (("af_bella", 0.5), ("af_sky", 0.5))
    assert parse_blend(" af_bella + af_sky ") == (("af_bella", 0.5), ("af_sky", 0.5))


def test_weights_are_normalised() -> None:
    assert dict(parse_blend("af_bella(0.7)+af_sky(0.3)")) == pytest.approx({"af_bella": 0.7, "af_sky": 0.3})
    assert parse_blend("af_bella(3)+af_sky") == (("af_bella", 0.75), ("af_sky", 0.25))
    assert parse_blend("af_bella(1)+af_bella(1)+af_sky(2)") == (("af_bella", 0.5), ("af_sky", 0.5))


@pytest.mark.parametrize(
    "spec",
    [
        "af_bella+",
        "+af_sky",
        "af_bella++af_sky",
        "af_bella(x)",
        "af_bella(0)",
        "af_bella(-1)",
        "af_bella-af_sky",
        "af_bella((1))",
        "af_bella(1",
        "af_bella(inf)",
        "af_bella(1e308)+af_sky(1e308)",
        "af_bella(1e-320)+af_sky",
        "af_bella(nan)",
        "af_bella(1001)",
        "+".join(["af_bella"] * 9),
    ],
)
def test_malformed_blends(spec: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_blend(spec)
    assert info.value.code == "invalid_voice_blend"
    assert "voice_a(0.7)+voice_b(0.3)" in info.value.message


def test_spec_round_trips() -> None:
    assert VoiceBlend((("a", 0.5), ("b", 0.5))).spec == "a+b"
    assert VoiceBlend((("a", 0.7), ("b", 0.3))).spec == "a(0.7)+b(0.3)"
    assert dict(parse_blend(VoiceBlend((("a", 0.7), ("b", 0.3))).spec)) == pytest.approx({"a": 0.7, "b": 0.3})


def test_unknown_voice_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidRequest) as info:
        catalog().resolve("af_nobody")
    assert info.value.code == "unknown_voice"
    assert info.value.details == {"voices": list(BUNDLED)}
    assert "jf_alpha, jf_gongitsune" in info.value.message


def test_missing_default_falls_back_to_the_first_voice() -> None:
    fallback, warnings = build_catalog(
        BUNDLED, default_voice="af_heart", offered=None, openai_voices=DEFAULT_OPENAI_VOICES
    )
    assert fallback.default.spec == "jf_alpha"
    assert fallback.default_is_fallback
    assert any("af_heart" in w for w in warnings)
    full = catalog(FULL)
    assert full.default.spec == "af_heart"
    assert not full.default_is_fallback
    assert catalog().resolve(None) == catalog().resolve("") == VoiceBlend.single("jf_alpha")


def test_openai_names_map_to_the_model_s_voices() -> None:
    assert catalog(FULL).resolve("alloy").spec == "af_alloy"
    assert catalog(FULL).resolve("echo").spec == "am_echo"
    assert catalog().resolve("alloy").spec == "jf_alpha"  # the bundled voice of the same register
    assert catalog().resolve("onyx").spec == "jm_kumo"
    assert catalog().resolve("Nova").spec == "jf_alpha"
    assert catalog().resolve("nova(0.6)+onyx(0.4)").spec == "jf_alpha(0.6)+jm_kumo(0.4)"


def test_configured_voice_list_limits_what_is_offered() -> None:
    limited, warnings = build_catalog(
        FULL, default_voice="af_heart", offered=["af_heart", "am_adam", "zz_gone"], openai_voices=DEFAULT_OPENAI_VOICES
    )
    assert limited.offered == ("af_heart", "am_adam")
    assert any("zz_gone" in w for w in warnings)
    with pytest.raises(InvalidRequest):
        limited.resolve("af_bella")
    assert limited.resolve("alloy") == limited.default  # af_alloy is not offered: the default stands in
