"""What the gateway does, one module per use case; routes and the WebSocket only parse and render.

    transcription   audio to text through the STT broker (the guide's shape, or OpenAI's passed through)
    synthesis       text to base64 audio through the TTS broker, one or a batch; the voice list
    stream          text to audio bytes streamed from the TTS broker as they are made

Each use case records its typed event (``EventSender.transcribed`` / ``.synthesized``).
"""
