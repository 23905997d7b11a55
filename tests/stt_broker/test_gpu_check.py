"""bench/gpu_check.sh and bench/gpu_check.py: every step that runs without a GPU, run here."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from devkit.speech import REPO
from stt_broker.models import prepare_bundled_ggml
from voicestack_common.audio import Pcm
from voicestack_common.encode import encode_audio

SCRIPT = REPO / "bench" / "gpu_check.sh"


def test_dry_run_reads_the_locked_version_and_builds_like_the_dockerfile(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        f"pywhispercpp {version('pywhispercpp')} from {tmp_path}/pywhispercpp-{version('pywhispercpp')}.tar.gz" in out
    )
    for setting in (
        "GGML_CUDA=1",
        "GGML_CUDA_NCCL=OFF",
        "CMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        "CMAKE_INSTALL_RPATH=$ORIGIN",
    ):
        assert setting in out
    assert "would fail: no " in out  # the empty folder has no sdist, model or clip
    assert "ggml-tiny.en-q8_0.bin" in out


def test_a_run_without_the_carry_folder_stops_before_building(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "gpu_check: no " in result.stderr
    assert "building" not in result.stdout


@pytest.mark.engine
@pytest.mark.timeout(900)  # seven short decodes and a broker start; slow only on a crowded machine
def test_the_measuring_half_runs_on_cpu_and_checks_transcripts(
    model_cache: Path, sentence: tuple[str, Pcm], tmp_path: Path
) -> None:
    wav = tmp_path / "clip.wav"
    wav.write_bytes(encode_audio(sentence[1], "wav"))
    args = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--model", str(prepare_bundled_ggml(model_cache))]
    args += ["--clip", str(wav), "--expect", "words never said"]
    args += ["--use-gpu", "false", "--threads", "2", "--runs", "1", "--workers", "1", "--clients", "1"]
    args += ["--per-client", "1", "--log", str(tmp_path / "broker.log"), "--json", str(tmp_path / "out.json")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 1  # the expectation is wrong on purpose: every path reports it
    failures = [line for line in result.stderr.splitlines() if line.startswith("TRANSCRIPT CHECK FAILED")]
    assert len(failures) == 3
    assert all("'words never said'" in line and "quick brown fox" in line.lower() for line in failures)
    lines = result.stdout.splitlines()
    assert lines[0] == "| path | p50 (clip.wav) | req/s at 1 clients |"
    labels = [line.split("|")[1].strip() for line in lines[2:] if line.startswith("| ")]
    assert labels == ["bare, flash attention off", "bare, flash attention on", "broker, 1 context"]
    assert "nvidia-smi, broker, 1 contexts:" in result.stdout
    assert "stt broker ready" in (tmp_path / "broker.log").read_text()
