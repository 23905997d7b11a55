"""Conversations at the gateway: the conversation service's client, the spoken-reply pipeline, the voice
loop on the chat WebSocket, and the seed flows (``/api/messages/voice``, ``/upload`` + ``/audio``)."""
