"""The images' Dockerfile: multi-stage, dependencies before sources, non-root, healthy."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.dockerfile import (
    Stage,
    flattened,
    parse_dockerfile,
    project_scripts,
    service_stages,
    workspace_members,
)
from tests.deploy.kit import DOCKERFILE, REPO, SERVICES, Service


def runtime_stages(service: Service) -> list[Stage]:
    """The images compose and Kubernetes run: the service's targets."""
    found = [stage for stage in service_stages(service) if stage.name in service.targets]
    assert sorted(stage.name or "" for stage in found) == sorted(service.targets)
    return found


def build_stages(service: Service) -> list[Stage]:
    return [stage for stage in service_stages(service) if any("uv sync" in r for r in stage.values("RUN"))]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_dependencies_are_installed_before_sources_are_copied(service: Service) -> None:
    stages = service_stages(service)
    assert len(stages) >= 2, "multi-stage: build with uv, run without it"
    copied_manifests = {args for stage in stages for args in stage.values("COPY")}
    for member in [*workspace_members(), "."]:
        manifest = f"{member}/pyproject.toml" if member != "." else "pyproject.toml"
        assert any(
            re.match(rf"(--\S+ )*{re.escape(manifest)}\b", args) or f" {manifest} " in f" {args} "
            for args in copied_manifests
        ), f"{manifest} is not copied: uv --locked needs every member's"
    assert build_stages(service), "no stage runs uv sync"
    for stage in build_stages(service):
        steps = [(kw, args) for kw, args in stage.instructions if kw in ("RUN", "COPY")]
        syncs = [i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "uv sync" in args]
        first, last = steps[syncs[0]][1], steps[syncs[-1]][1]
        assert "--locked" in first
        assert "--no-install-workspace" in first
        assert f"--package {service.package}" in first
        assert "--locked" in last
        assert "--no-editable" in last
        assert f"--package {service.package}" in last
        assert "--no-dev" in first
        assert "--no-dev" in last
        sources = [
            i
            for i, (kw, args) in enumerate(steps)
            if kw == "COPY"
            and ("--from=sources" in args or f"{service.directory} " in args + " " or "libs/common " in args + " ")
        ]
        assert sources, "sources are never copied"
        assert syncs[0] < min(sources) < syncs[-1], "copy sources between the two syncs"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_runtime_images_run_as_a_user_and_check_readyz(service: Service) -> None:
    port = service.default_port()
    scripts = project_scripts(service)
    prefix = service.env_prefix()
    for stage in runtime_stages(service):
        users = stage.values("USER")
        assert users, f"{stage.name}: no USER"
        assert users[-1] not in ("root", "0"), f"{stage.name}: runs as root"
        assert not any("uv" in args.split() for args in stage.values("COPY")), "uv stays in the build stage"
        healthcheck = " ".join(stage.values("HEALTHCHECK"))
        assert f"http://127.0.0.1:{port}{service.ready_path}" in healthcheck
        assert stage.values("EXPOSE") == [str(port)]
        assert stage.env().get(f"{prefix}HOST") == "0.0.0.0"
        command = stage.values("CMD")[-1]
        assert re.match(r'\["([^"]+)", "serve"\]', command), command
        assert command.split('"')[1] in scripts, f"{command} is not a script of {service.package}"


def broker_stages(image: str) -> dict[str, Stage]:
    """A broker's stages, flattened onto their bases, by name without the image's prefix (``build-cuda``, ``cuda``)."""
    stages = parse_dockerfile(DOCKERFILE)
    return {
        s.name.removeprefix(f"{image}-"): flattened(stages, s.name)
        for s in stages
        if s.name and s.name.startswith(f"{image}-")
    }


def test_cuda_images_compile_whisper_cpp_and_use_onnxruntime_gpu() -> None:
    stt = broker_stages("stt-broker")
    assert stt["build-cuda"].base.startswith("nvidia/cuda:")
    assert "-devel-" in stt["build-cuda"].base
    assert stt["cuda"].base.startswith("nvidia/cuda:")
    assert "runtime" in stt["cuda"].base
    assert stt["build-cuda"].env()["GGML_CUDA"] == "1"
    # A source-built pywhispercpp 1.5 links its libraries by the build folder's path unless
    # told otherwise (checked by building it here): the runtime image has no build folder.
    assert stt["build-cuda"].env()["CMAKE_BUILD_WITH_INSTALL_RPATH"] == "ON"
    assert stt["build-cuda"].env()["CMAKE_INSTALL_RPATH"] == "\\$ORIGIN"
    assert all("--no-binary-package pywhispercpp" in r for r in stt["build-cuda"].values("RUN") if "uv sync" in r)
    assert stt["cuda"].env()["STT_USE_GPU"] == "true"
    tts = broker_stages("tts-broker")
    swap = tts["build-cuda"].values("RUN")[-1]
    assert "uv pip uninstall" in swap
    assert "onnxruntime-gpu==" in swap
    assert "cudnn" in tts["cuda"].base
    assert tts["cuda"].env()["TTS_USE_GPU"] == "true"
    # The CPU stages keep the locked wheels as they are.
    assert not any(
        "onnxruntime-gpu" in r or "no-binary" in r
        for name in ("build-cpu", "cpu")
        for r in tts[name].values("RUN") + stt[name].values("RUN")
    )


def test_onnxruntime_gpu_is_the_locked_onnxruntime_version() -> None:
    """The CUDA image swaps onnxruntime for onnxruntime-gpu: same version, or kokoro-onnx drifts."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "onnxruntime"]
    stages = broker_stages("tts-broker")
    pinned = dict(arg.partition("=")[::2] for arg in stages["build-cuda"].values("ARG"))
    assert pinned.get("ONNXRUNTIME_VERSION") == locked, "update ONNXRUNTIME_VERSION with uv.lock"


def test_the_cuda_build_stage_uses_the_same_python_the_runtime_gets() -> None:
    for image in ("stt-broker", "tts-broker"):
        stages = broker_stages(image)
        install_dir = stages["build-cuda"].env()["UV_PYTHON_INSTALL_DIR"]
        assert f"--from={image}-build-cuda {install_dir} {install_dir}" in stages["cuda"].values("COPY")


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**/`` is any number of folders, ``*`` stays in one."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + "$")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the context (a matching folder takes its contents along)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(_docker_pattern(p.rstrip("/")).match(prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_what_images_copy_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "keep the ignore list simple: no exceptions"
    for stage in parse_dockerfile(DOCKERFILE):
        for args in stage.values("COPY"):
            if "--from=" in args:
                continue
            for source in args.split()[:-1]:
                assert not _ignored(source.rstrip("/"), patterns), f"{source} is copied but ignored"
    for path in (
        ".git",
        ".venv",
        "deploy/models/ggml-large-v3-turbo.bin",
        "tests",
        "devkit",
        "docs",
        ".env",
        "services/stt_broker/.env",
    ):
        assert _ignored(path, patterns), f"{path} reaches the build"
