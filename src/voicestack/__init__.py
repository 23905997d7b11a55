"""voicestack: the command that runs the local stack and talks to it."""

__version__ = "0.1.0"
