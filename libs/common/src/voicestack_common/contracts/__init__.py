"""The bodies services exchange, defined once: each side imports the same class.

    contracts.stt      gateway → STT broker: the guide's and OpenAI's transcription answers
    contracts.tts      gateway → TTS broker: synthesis and OpenAI speech requests, answers, voices
    events             gateway → MQTT bridge: one event per finished transcription or synthesis
    schemas            every service: the error body, OpenAI's model list

Answers allow fields they do not name, so a gateway passes on what a newer broker adds.
"""
