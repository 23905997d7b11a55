"""Typed dependencies: what routes reach of the lifespan's resources."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tts_broker.settings import TtsSettings
from tts_broker.synthesizer import Synthesizer


def get_synthesizer(request: Request) -> Synthesizer:
    """The lifespan's synthesizer."""
    synthesizer: Synthesizer = request.state.synthesizer
    return synthesizer


def get_settings(request: Request) -> TtsSettings:
    """The settings the app was built with."""
    settings: TtsSettings = request.app.state.settings
    return settings


SynthesizerDep = Annotated[Synthesizer, Depends(get_synthesizer)]
SettingsDep = Annotated[TtsSettings, Depends(get_settings)]
