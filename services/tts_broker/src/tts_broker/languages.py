"""Kokoro's one-letter language codes, the espeak-ng voice that phonemizes each, and what a
voice's name says about it (``bf_emma``: British English, female)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voicestack_common.contracts.tts import KOKORO_LANGUAGE_ISO

Gender = Literal["female", "male"]


@dataclass(frozen=True, slots=True)
class Language:
    """One language Kokoro speaks."""

    code: str
    """Kokoro's code, the first letter of its voice names (``a`` for ``af_heart``)."""
    espeak: str
    """The espeak-ng language that turns its text into phonemes."""
    name: str
    tag: str
    """BCP 47 tag (``en-US``)."""
    sample: str
    """A sentence the engine phonemizes at load to check that the language's front end works."""

    @property
    def iso(self) -> str:
        """ISO 639-1 code (``en``), as the shared contract maps Kokoro's codes."""
        return KOKORO_LANGUAGE_ISO[self.code]


# As Kokoro's KPipeline maps them; the espeak-ng voices are the ones kokoro-onnx uses.
LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("a", "en-us", "American English", "en-US", "Hello, this is a test."),
        Language("b", "en-gb", "British English", "en-GB", "Hello, this is a test."),
        Language("e", "es", "Spanish", "es-ES", "Hola, esto es una prueba."),
        Language("f", "fr-fr", "French", "fr-FR", "Bonjour, ceci est un test."),
        Language("h", "hi", "Hindi", "hi-IN", "नमस्ते, यह एक परीक्षण है।"),
        Language("i", "it", "Italian", "it-IT", "Ciao, questo è un test."),
        Language("p", "pt-br", "Brazilian Portuguese", "pt-BR", "Olá, isto é um teste."),
        Language("j", "ja", "Japanese", "ja-JP", "こんにちは、これはテストです。"),
        Language("z", "cmn", "Mandarin Chinese", "zh-CN", "你好，这是一个测试。"),
    )
}

# Languages whose text front end this machine lacks, though espeak-ng answers for them (checked
# by phonemizing the samples above). Kokoro's Mandarin voices learned misaki[zh]'s phonemes
# (pinyin with tone marks, from jieba and pypinyin); espeak-ng's cmn gives none of the tones and
# leaves retroflex consonants as its own mnemonics (``ts.``, ``s.``), which the model reads as
# punctuation: the speech would be wrong, so the language is refused.
MISSING_FRONT_ENDS: dict[str, str] = {
    "z": "Mandarin needs misaki[zh] (jieba, pypinyin) for Kokoro's tone-marked phonemes, which is not "
    "installed; espeak-ng's Mandarin phonemes have no tones and the voices would speak wrongly",
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


def voice_lang_code(voice: str) -> str | None:
    """The language a Kokoro voice speaks, from its first letter (``b`` for ``bf_emma``); ``None``
    for a name that does not follow Kokoro's ``<language><gender>_<name>`` pattern."""
    if len(voice) > 3 and voice[2] == "_" and voice[0] in LANGUAGES and voice[1] in "fm":
        return voice[0]
    return None


def voice_gender(voice: str) -> Gender | None:
    """A Kokoro voice's gender, from its second letter; ``None`` when the name does not say."""
    if voice_lang_code(voice) is None:
        return None
    return "female" if voice[1] == "f" else "male"
