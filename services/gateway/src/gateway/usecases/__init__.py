"""What the gateway does, one module per use case; routes and the WebSockets only parse and render.

    transcription   audio to text through the STT broker (the guide's shape, or OpenAI's passed through)
    synthesis       text to base64 audio through the TTS broker, one or a batch; the voice list
    stream          text to audio bytes streamed from the TTS broker as they are made
    models          the models of both brokers and the conversation service's responders
    spoken_reply    a turn of the conversation service, spoken sentence by sentence as it is written
    voice_chat      the chat socket's voice loop: live recognition in, spoken replies out, barge-in
    voice_message   seed 003: one spoken message, answered in text and audio at once
    device_reply    seed 000: upload speech now, fetch the spoken reply piece by piece later

Each use case records its typed events (``EventSender.transcribed`` / ``.synthesized`` / ``.replied``);
every face (REST, the chat socket, Realtime) calls these, so each records the same events.
"""
