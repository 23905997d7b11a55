"""voicestack's text-to-speech broker."""

__version__ = "0.1.0"
