"""Kokoro's one-letter language codes, and the espeak-ng voice that phonemizes each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Language:
    """One language Kokoro speaks."""

    code: str
    """Kokoro's code, the first letter of its voice names (``a`` for ``af_heart``)."""
    espeak: str
    """The espeak-ng language that turns its text into phonemes."""
    name: str


# As Kokoro's KPipeline maps them; the espeak-ng voices are the ones kokoro-onnx uses.
LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("a", "en-us", "American English"),
        Language("b", "en-gb", "British English"),
        Language("e", "es", "Spanish"),
        Language("f", "fr-fr", "French"),
        Language("h", "hi", "Hindi"),
        Language("i", "it", "Italian"),
        Language("p", "pt-br", "Brazilian Portuguese"),
        Language("j", "ja", "Japanese"),
        Language("z", "cmn", "Mandarin Chinese"),
    )
}

# Clients also send the usual tags; each means the Kokoro code it maps to.
_ALIASES = {
    "en": "a",
    "en-us": "a",
    "american": "a",
    "en-gb": "b",
    "en-uk": "b",
    "british": "b",
    "es": "e",
    "fr": "f",
    "fr-fr": "f",
    "hi": "h",
    "it": "i",
    "pt": "p",
    "pt-br": "p",
    "ja": "j",
    "jp": "j",
    "zh": "z",
    "cmn": "z",
    "zh-cn": "z",
}


def normalize_lang_code(value: str) -> str:
    """Kokoro's code for ``value`` (a code, or a tag such as ``en-gb``); KeyError when unknown."""
    key = value.strip().lower().replace("_", "-")
    if key in LANGUAGES:
        return key
    return _ALIASES[key]


def supported_codes() -> str:
    """The codes for an error message: ``a (American English), b (...), ...``."""
    return ", ".join(f"{lang.code} ({lang.name})" for lang in LANGUAGES.values())
