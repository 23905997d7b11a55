"""STT broker fixtures: one app per configuration, on the real engines and bundled model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stt_broker.app import create_app
from stt_broker.settings import SttSettings


def stt_settings(model_cache: Path, **overrides: object) -> SttSettings:
    """Settings for tests: the test model cache, nothing from the environment's .env, and tiny.en
    for every request (base is 3-5x slower) unless a test is about choosing the model."""
    if "model_path" not in overrides:
        overrides.setdefault("model", "tiny.en")
    return SttSettings(_env_file=None, cache_dir=model_cache, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="package")
def stt_client(model_cache: Path) -> Iterator[TestClient]:
    """The default broker (whisper.cpp, two contexts) with its lifespan running."""
    with TestClient(create_app(stt_settings(model_cache, workers=2, max_queue=8))) as client:
        yield client
