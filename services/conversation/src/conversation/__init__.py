"""voicestack's conversation service: conversations, messages and the responders that answer."""

__version__ = "0.1.0"
