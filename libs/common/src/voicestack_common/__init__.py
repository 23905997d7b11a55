"""What every voicestack service shares: the request edge, the wire contracts, audio, workers, events.

Services import its modules (``voicestack_common.audio``, ``voicestack_common.contracts.tts``, ...);
it is never run on its own. docs/architecture.md lists what each module holds.
"""
