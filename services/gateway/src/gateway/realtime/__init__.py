"""OpenAI Realtime-compatible face (``WS /v1/realtime``) over the live session core and the voice loop."""
