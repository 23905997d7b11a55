"""Voice names, Kokoro-FastAPI's blend syntax, OpenAI's voice names, and the default voice."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tts_broker.engines.base import VoiceBlend
from tts_broker.languages import LANGUAGES, voice_gender, voice_lang_code
from voicestack_common.contracts.tts import VoiceInfo
from voicestack_common.errors import InvalidRequest

MAX_BLEND_VOICES = 8
# Weights are relative; a bound keeps their sum finite (two weights of 1e308 overflowed to inf and
# mixed NaN into the style vector) and every share large enough to be heard.
MAX_BLEND_WEIGHT = 1000.0
MIN_BLEND_WEIGHT = 0.001
_PART = re.compile(r"^([A-Za-z0-9_.]+)(?:\(([^()]*)\))?$")


def _blend_error(message: str) -> InvalidRequest:
    return InvalidRequest(
        f"{message}; write a blend as 'voice_a+voice_b' or 'voice_a(0.7)+voice_b(0.3)'", code="invalid_voice_blend"
    )


def parse_blend(spec: str) -> tuple[tuple[str, float], ...]:
    """``a(0.7)+b(0.3)`` as ``(("a", 0.7), ("b", 0.3))``; a part without a weight weighs 1.

    Weights are normalised to sum to 1 and a voice named twice counts once,
    with its weights added, as Kokoro-FastAPI blends them.
    """
    text = "".join(spec.split())
    if "-" in re.sub(r"\([^()]*\)", "", text):
        raise _blend_error("subtracting voices ('-') is not supported")
    parts = text.split("+")
    if len(parts) > MAX_BLEND_VOICES:
        raise _blend_error(f"a blend mixes at most {MAX_BLEND_VOICES} voices")
    weights: dict[str, float] = {}
    for part in parts:
        match = _PART.match(part)
        if match is None:
            raise _blend_error(
                f"{part!r} in voice {spec!r} is not a voice name with an optional (weight)"
                if part
                else f"voice {spec!r} has an empty part"
            )
        name, raw = match.groups()
        try:
            weight = 1.0 if raw is None else float(raw)
        except ValueError:
            raise _blend_error(f"weight {raw!r} of voice {name!r} is not a number") from None
        if not math.isfinite(weight) or not MIN_BLEND_WEIGHT <= weight <= MAX_BLEND_WEIGHT:
            raise _blend_error(
                f"weight {raw!r} of voice {name!r} must be a number from {MIN_BLEND_WEIGHT:g} to {MAX_BLEND_WEIGHT:g}"
            )
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    return tuple((name, weight / total) for name, weight in weights.items())


def _mix(parts: Iterable[tuple[VoiceBlend, float]]) -> VoiceBlend:
    """Blends of blends, flattened: each voice's weight is the product along the way."""
    weights: dict[str, float] = {}
    for blend, outer in parts:
        for name, inner in blend.components:
            weights[name] = weights.get(name, 0.0) + outer * inner
    return VoiceBlend(tuple(weights.items()))


@dataclass(frozen=True)
class VoiceCatalog:
    """The voices offered, the default voice, and what OpenAI's names stand for."""

    offered: tuple[str, ...]
    default: VoiceBlend
    configured_default: str
    openai: Mapping[str, VoiceBlend] = field(default_factory=dict)
    default_is_fallback: bool = False
    """Whether the configured default voice was missing and the first voice stands in."""

    def resolve(self, spec: str | None) -> VoiceBlend:
        """The voice or blend a request names (``None`` or empty: the default)."""
        if spec is None or not spec.strip():
            return self.default
        parts: list[tuple[VoiceBlend, float]] = []
        for name, weight in parse_blend(spec):
            if name in self.offered:
                parts.append((VoiceBlend.single(name), weight))
            elif name.lower() in self.openai:
                parts.append((self.openai[name.lower()], weight))
            else:
                raise InvalidRequest(
                    f"unknown voice {name!r}; available voices: {', '.join(self.offered)}",
                    code="unknown_voice",
                    details={"voices": list(self.offered)},
                )
        return _mix(parts)


def build_catalog(
    available: Sequence[str],
    *,
    default_voice: str,
    offered: Sequence[str] | None,
    openai_voices: Mapping[str, Sequence[str]],
) -> tuple[VoiceCatalog, list[str]]:
    """The catalog for an engine's voices, and warnings about configured voices it lacks."""
    warnings: list[str] = []
    names = tuple(sorted(available))
    if offered is not None:
        missing = [v for v in offered if v not in names]
        if missing:
            warnings.append(f"configured voices {', '.join(missing)} are not in the model; left out")
        names = tuple(v for v in dict.fromkeys(offered) if v in available) or names
    if not names:
        raise RuntimeError("the engine offers no voices")
    bare = VoiceCatalog(offered=names, default=VoiceBlend.single(names[0]), configured_default=default_voice)
    openai: dict[str, VoiceBlend] = {}
    for alias, candidates in openai_voices.items():
        for candidate in candidates:
            try:
                openai[alias.lower()] = bare.resolve(candidate)
                break
            except InvalidRequest:
                continue
    fallback = False
    try:
        default = VoiceCatalog(names, bare.default, default_voice, openai).resolve(default_voice)
    except InvalidRequest:
        default, fallback = bare.default, True
        warnings.append(f"default voice {default_voice!r} is not available; using {default.spec!r}")
    for alias in openai_voices:
        openai.setdefault(alias.lower(), default)
    return VoiceCatalog(names, default, default_voice, openai, fallback), warnings


def voice_info(name: str, unavailable: Mapping[str, str], default_lang_code: str) -> VoiceInfo:
    """What a voice speaks, as its name tells (a name without Kokoro's prefix: the default language)."""
    lang = LANGUAGES[voice_lang_code(name) or default_lang_code]
    reason = unavailable.get(lang.code)
    return VoiceInfo(
        id=name,
        lang_code=lang.code,
        language=lang.tag,
        language_name=lang.name,
        gender=voice_gender(name),
        available=reason is None,
        reason=reason,
    )
