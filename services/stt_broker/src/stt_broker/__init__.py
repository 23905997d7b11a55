"""voicestack's speech-to-text broker."""

__version__ = "0.1.0"
