"""Accuracy guard: word error rate on a fixed subset of the WER set, through the broker's API.

The whole set and every engine configuration are measured by bench/bench_wer.py (the
table in docs/benchmarks.md); these bounds sit above what the default configuration
scores on the subset (0.05 when measured), so a regression in decoding, resampling or
VAD fails the test command. No timings here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stt_broker.app import create_app
from tests.stt_broker.conftest import stt_settings
from tests.wer import SUBSET, clip_wav, noise_only_wav, utterance, wer, word_errors

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def no_vad_client(model_cache: Path) -> Iterator[TestClient]:
    with TestClient(create_app(stt_settings(model_cache, vad=False, workers=1))) as client:
        yield client


def transcribe(client: TestClient, wav: bytes) -> str:
    answer = client.post("/v1/transcribe", files={"file": ("clip.wav", wav, "audio/wav")})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["text"])


@pytest.mark.timeout(900)  # twelve short decodes: a minute on an idle machine, more on a crowded one
def test_wer_bounds_with_and_without_vad(stt_client: TestClient, no_vad_client: TestClient) -> None:
    items = [utterance(i) for i in SUBSET]
    with_vad = [(item.text, transcribe(stt_client, clip_wav(item))) for item in items]
    without = [(item.text, transcribe(no_vad_client, clip_wav(item))) for item in items]
    assert wer(with_vad) <= 0.15, with_vad
    assert wer(without) <= 0.15, without
    # VAD never makes a clean transcript worse.
    for item, (ref, vad_text), (_, raw_text) in zip(items, with_vad, without, strict=True):
        if item.snr_db is None:
            assert word_errors(ref, vad_text)[0] <= word_errors(ref, raw_text)[0], (item, vad_text, raw_text)


def test_vad_turns_noise_alone_into_an_empty_transcript(stt_client: TestClient) -> None:
    assert transcribe(stt_client, noise_only_wav()) == ""
