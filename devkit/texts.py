"""Words for texts the TTS cache has never seen (the memory tests need every synthesis to be new)."""

from __future__ import annotations

WORDS = [
    "amber",
    "river",
    "quiet",
    "lantern",
    "meadow",
    "signal",
    "copper",
    "harbor",
    "velvet",
    "orbit",
    "maple",
    "thunder",
]
