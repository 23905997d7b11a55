"""The CUDA image's shared libraries: one copy plus links, NCCL built out, every dependency checked."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.dockerfile import flattened, parse_dockerfile
from tests.deploy.kit import DOCKERFILE, REPO

SCRIPT = REPO / "services/stt_broker/docker/native_libs.py"


@pytest.fixture(scope="module")
def native_libs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("native_libs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_duplicate_libraries_become_links_to_one_copy(native_libs: ModuleType, tmp_path: Path) -> None:
    libs = tmp_path / "site-packages" / "lib"
    libs.mkdir(parents=True)
    kernels = os.urandom(4096)
    for name in ("libggml-cuda.so", "libggml-cuda.so.0", "libggml-cuda.so.0.9.7"):
        (libs / name).write_bytes(kernels)
    (libs / "libwhisper.so.1").write_bytes(b"other")  # a different library stays as it is
    (libs / "libwhisper.so").write_bytes(b"changed")  # same name, other bytes: not linked
    saved = native_libs.dedupe(tmp_path)
    assert saved == 2 * len(kernels)
    assert not (libs / "libggml-cuda.so.0.9.7").is_symlink()
    for name in ("libggml-cuda.so", "libggml-cuda.so.0"):
        assert (libs / name).is_symlink()
        assert os.readlink(libs / name) == "libggml-cuda.so.0.9.7"
        assert (libs / name).read_bytes() == kernels
    assert not (libs / "libwhisper.so").is_symlink()
    assert native_libs.dedupe(tmp_path) == 0  # idempotent


def test_missing_dependencies_are_reported_except_the_host_driver(native_libs: ModuleType) -> None:
    ldd = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibcudart.so.12 => /usr/local/cuda/lib64/libcudart.so.12 (0x00007f)\n"
        "\tlibnccl.so.2 => not found\n"
        "\tlibcuda.so.1 => not found\n"
    )
    assert native_libs.missing(ldd) == ["libnccl.so.2"]


def test_check_passes_on_this_venv_and_the_cli_says_what_it_did(native_libs: ModuleType, tmp_path: Path) -> None:
    import pywhispercpp

    site = Path(pywhispercpp.__file__).parents[1]
    assert native_libs.check(site / "pywhispercpp.libs") == {}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "check", str(site / "pywhispercpp.libs")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    (tmp_path / "libx.so.1").write_bytes(b"a")
    (tmp_path / "libx.so").write_bytes(b"a")
    result = subprocess.run([sys.executable, str(SCRIPT), "dedupe", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0
    assert "MB saved" in result.stdout


def test_the_cuda_image_builds_nccl_out_dedupes_and_checks() -> None:
    stages = parse_dockerfile(DOCKERFILE)
    build, runtime = flattened(stages, "stt-broker-build-cuda"), flattened(stages, "stt-broker-cuda")
    assert build.env()["GGML_CUDA_NCCL"] == "OFF"
    runs = build.values("RUN")
    last_sync = max(i for i, r in enumerate(runs) if "uv sync" in r)
    assert any("native_libs.py dedupe /app/.venv/lib" in r for r in runs[last_sync + 1 :])
    assert any("native_libs.py check /app/.venv/lib" in r for r in runtime.values("RUN"))
    copies = runtime.values("COPY")
    venv_copy = next(i for i, c in enumerate(copies) if c.endswith("/app/.venv /app/.venv"))
    script_copy = next(i for i, c in enumerate(copies) if "native_libs.py" in c)
    assert venv_copy < script_copy
