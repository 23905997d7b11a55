"""deploy/docker-compose.yml and its CPU override: valid, healthy, wired as the stack needs."""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kit import (
    BY_NAME,
    COMPOSE_FILE,
    CPU_OVERRIDE,
    DEPLOY,
    DOCKERFILE,
    REPO,
    VARIANTS,
    WYOMING_OVERRIDE,
    Variant,
    compose_config,
    env_of,
    interpolated_names,
    load_yaml,
    schema_errors,
    sequences_in,
    service_for_build,
    with_defaults,
)

VARIANT_IDS = [v.id for v in VARIANTS]
PUBLISHED = {"gateway", "mosquitto", "grafana"}
GPU_SERVICES = {"stt_broker", "tts_broker", "whispercpp", "kokoro", "llm"}
LLM_MODEL = "qwen2.5-1.5b-instruct"
"""The model the llm_model job pulls and the llm service serves by default (``conversation models pull``)."""


def services(variant: Variant) -> dict[str, dict[str, Any]]:
    """The variant's running services."""
    found: dict[str, dict[str, Any]] = variant.document()["services"]
    return found


def one_shot_jobs(svcs: dict[str, dict[str, Any]]) -> set[str]:
    """Services others wait on to finish (``service_completed_successfully``), not to be healthy."""
    return {
        target
        for svc in svcs.values()
        for target, dep in (svc.get("depends_on") or {}).items()
        if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
    }


def named_volume_mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Container path → named volume, for a service's short-syntax volume entries."""
    mounts = {}
    for entry in svc.get("volumes", []):
        source, _, rest = str(entry).partition(":")
        if source and not source.startswith((".", "/", "$", "~")):
            mounts[rest.partition(":")[0]] = source
    return mounts


# ---- validity -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_docker_compose_accepts_the_files(variant: Variant, tmp_path: Path) -> None:
    """Debian's docker-compose parses, interpolates and validates every variant (no engine needed)."""
    files = list(variant.files)
    if variant.uses_reset:
        # 1.29 predates `!reset`: it validates the merged result instead.
        merged = tmp_path / "merged.yml"
        merged.write_text(yaml.safe_dump(variant.merged(), sort_keys=False))
        files = [merged]
    result = compose_config(files, variant.profiles, quiet=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", [COMPOSE_FILE, CPU_OVERRIDE, WYOMING_OVERRIDE], ids=lambda p: p.name)
def test_files_match_the_compose_spec_schema(path: Path) -> None:
    assert schema_errors(load_yaml(path, resets=False)) == []


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_merged_variants_match_the_compose_spec_schema(variant: Variant) -> None:
    assert schema_errors(variant.merged()) == []


def test_the_schema_check_catches_mistakes() -> None:
    doc = load_yaml(COMPOSE_FILE)
    doc["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    doc["services"]["stt_broker"]["depends_on"] = {"gateway": {"condition": "service_happy"}}
    errors = schema_errors(doc)
    assert any("intervall" in e for e in errors)
    assert any("service_happy" in e for e in errors)


def test_docker_compose_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        COMPOSE_FILE.read_text()
        .replace("restart: unless-stopped", "restart: sometimes", 1)
        .replace("start_period: 30s", "start_perod: 30s", 1)
    )
    assert compose_config([broken], quiet=True).returncode != 0


def test_the_cpu_override_merges_exactly() -> None:
    """The override holds only mappings and scalars, so merging it key by key is what Compose does."""
    assert sequences_in(load_yaml(CPU_OVERRIDE)) == []
    base = load_yaml(COMPOSE_FILE)["services"]
    assert set(load_yaml(CPU_OVERRIDE)["services"]) <= set(base), "an override may only change services"


# ---- health and start order ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_every_service_has_a_healthcheck(variant: Variant) -> None:
    svcs = services(variant)
    jobs = one_shot_jobs(svcs)
    for name, svc in svcs.items():
        if name in jobs:
            assert svc.get("restart") == "no", f"{name} runs once: it must not restart"
            continue
        check = svc.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} turns its healthcheck off"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"


@pytest.mark.parametrize("service", ["gateway", "stt_broker", "tts_broker", "mqtt_bridge"])
def test_voicestack_healthchecks_ask_readyz_on_the_listening_port(service: str) -> None:
    svc = services(VARIANTS[0])[service]
    command = " ".join(svc["healthcheck"]["test"][1:])
    port = BY_NAME[service].default_port()
    assert f"http://127.0.0.1:{port}{BY_NAME[service].ready_path}" in command
    env = env_of(svc)
    prefix = BY_NAME[service].env_prefix()
    assert env.get(f"{prefix}HOST") == "0.0.0.0"
    assert env.get(f"{prefix}PORT") in (None, str(port))


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_dependencies_wait_for_health(variant: Variant) -> None:
    svcs = services(variant)
    for name, svc in svcs.items():
        for target, dep in (svc.get("depends_on") or {}).items():
            assert isinstance(dep, dict), f"{name} → {target}: use the long form with a condition"
            assert "condition" in dep, f"{name} → {target}: give a condition"
            assert target in svcs, f"{name} depends on {target}, which this variant does not run"
            if dep["condition"] == "service_healthy":
                assert svcs[target].get("healthcheck"), f"{name} waits for {target}'s health, it has none"
    gateway = svcs["gateway"]["depends_on"]
    assert gateway["stt_broker"]["condition"] == gateway["tts_broker"]["condition"] == "service_healthy"
    assert svcs["mqtt_bridge"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_long_running_services_restart(variant: Variant) -> None:
    svcs = services(variant)
    for name in set(svcs) - one_shot_jobs(svcs):
        assert svcs[name].get("restart") in ("unless-stopped", "always", "on-failure"), name


# ---- networks, ports, volumes ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_only_the_gateway_mqtt_and_grafana_are_published(variant: Variant) -> None:
    """...and the brokers' Wyoming ports, only with the Wyoming override."""
    doc = variant.document()
    published = PUBLISHED | ({"stt_broker", "tts_broker"} if WYOMING_OVERRIDE in variant.files else set())
    backend = [name for name, net in doc["networks"].items() if (net or {}).get("internal")]
    assert backend == ["backend"]
    jobs = one_shot_jobs(doc["services"])
    for name, svc in doc["services"].items():
        if svc.get("network_mode") == "none":
            continue
        if svc.get("networks") == ["downloads"]:
            assert name in jobs, f"{name} reaches the internet: only a one-shot model download may"
            assert not svc.get("ports"), name
            continue
        if name in published:
            assert svc.get("ports"), name
            assert set(svc["networks"]) == {"frontend", "backend"}, name
        else:
            assert not svc.get("ports"), f"{name} must not be published"
            assert svc["networks"] == ["backend"], f"{name} belongs on the internal network only"
    gateway_ports = [with_defaults(p) for p in doc["services"]["gateway"]["ports"]]
    assert gateway_ports == ["0.0.0.0:8000:8000"]
    for name in ("mosquitto", "grafana"):
        assert all(with_defaults(p).startswith("127.0.0.1:") for p in doc["services"][name]["ports"]), (
            f"{name} listens on the host's loopback unless configured otherwise"
        )


def test_models_outbox_and_grafana_live_in_named_volumes() -> None:
    doc = VARIANTS[0].document()
    svcs = doc["services"]
    declared = set(doc["volumes"])
    for name, svc in svcs.items():
        assert set(named_volume_mounts(svc).values()) <= declared, name
    assert named_volume_mounts(svcs["stt_broker"]).get(env_of(svcs["stt_broker"])["STT_CACHE_DIR"] or "")
    assert named_volume_mounts(svcs["tts_broker"]).get(env_of(svcs["tts_broker"])["TTS_CACHE_DIR"] or "")
    outbox = env_of(svcs["mqtt_bridge"])["MQTT_BRIDGE_OUTBOX_PATH"] or ""
    assert named_volume_mounts(svcs["mqtt_bridge"]).get(posixpath.dirname(outbox))
    assert named_volume_mounts(svcs["grafana"]).get("/var/lib/grafana")
    assert named_volume_mounts(svcs["prometheus"]).get("/prometheus")


def test_bind_mount_sources_are_in_the_repository() -> None:
    for variant in VARIANTS:
        for name, svc in variant.document()["services"].items():
            for entry in svc.get("volumes", []):
                source = with_defaults(str(entry).partition(":")[0])
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"


# ---- GPU, CPU and the remote engines ---------------------------------------------------------


def gpu_devices(svc: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
        "devices"
    ) or []
    return devices


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_gpu_reservations_and_image_targets(variant: Variant) -> None:
    svcs = services(variant)
    on_gpu = variant.id.startswith("gpu")
    for name, svc in svcs.items():
        devices = gpu_devices(svc)
        if on_gpu and name in GPU_SERVICES:
            assert devices, f"{name} reserves no GPU"
            assert devices[0]["driver"] == "nvidia", name
            assert "gpu" in devices[0]["capabilities"], name
        else:
            assert not devices, f"{name} reserves a GPU in the {variant.id} variant"
    variant_name = "cuda" if on_gpu else "cpu"
    for name in ("stt_broker", "tts_broker"):
        assert svcs[name]["build"]["target"] == f"{BY_NAME[name].image}-{variant_name}"
        assert with_defaults(svcs[name]["image"]).endswith(f":{variant_name}")
        prefix = BY_NAME[name].env_prefix()
        assert env_of(svcs[name])[f"{prefix}USE_GPU"] == str(on_gpu).lower()


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_images_are_built_from_the_services_dockerfiles_with_existing_targets(variant: Variant) -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE | re.I)
    for name, svc in services(variant).items():
        build = svc.get("build")
        if not build:
            continue
        assert (DEPLOY / build["context"]).resolve() == REPO, f"{name}: build context is the repository root"
        assert "target" in build, f"{name}: name the image's target (the Dockerfile builds every image)"
        assert build["target"] in stages, f"{name}: no stage {build['target']} in {DOCKERFILE}"
        service = service_for_build(build)
        assert service is not None, f"{name} builds from an unknown Dockerfile or target"


def test_brokers_can_be_scaled_and_the_gateway_finds_every_replica() -> None:
    svcs = services(VARIANTS[0])
    for name in ("stt_broker", "tts_broker"):
        assert "container_name" not in svcs[name], f"{name}: a fixed name would stop `--scale`"
        assert not svcs[name].get("ports"), f"{name}: a host port would stop `--scale`"
    env = env_of(svcs["gateway"])
    assert env["GATEWAY_STT_URLS"] == f"http://stt_broker:{BY_NAME['stt_broker'].default_port()}"
    assert env["GATEWAY_TTS_URLS"] == f"http://tts_broker:{BY_NAME['tts_broker'].default_port()}"
    assert env["GATEWAY_RESOLVE_REPLICAS"] == "true"
    assert env["GATEWAY_EVENTS_URL"] == f"http://mqtt_bridge:{BY_NAME['mqtt_bridge'].default_port()}"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if "remote" in v.profiles], ids=lambda v: v.id)
def test_the_remote_profile_wires_the_brokers_to_the_official_servers(variant: Variant) -> None:
    svcs = services(variant)
    # The URLs are passed through from deploy/.env (a URL selects engine=remote, so none is set by
    # default); docs/deploy.md gives the ones these services listen on.
    assert "STT_REMOTE_URL" in env_of(svcs["stt_broker"])
    assert "TTS_REMOTE_URL" in env_of(svcs["tts_broker"])
    deploy_doc = (REPO / "docs" / "deploy.md").read_text()
    assert "STT_REMOTE_URL=http://whispercpp:8082" in deploy_doc
    assert "TTS_REMOTE_URL=http://kokoro:8880" in deploy_doc
    whisper_command = with_defaults(svcs["whispercpp"]["command"][0])
    assert whisper_command.startswith("whisper-server ")
    assert "--port 8082" in whisper_command
    assert "--host 0.0.0.0" in whisper_command
    assert "8082/health" in " ".join(svcs["whispercpp"]["healthcheck"]["test"])
    assert "8880/health" in " ".join(svcs["kokoro"]["healthcheck"]["test"])
    assert svcs["whispercpp"]["image"].startswith("ghcr.io/ggml-org/whisper.cpp:main")
    assert svcs["kokoro"]["image"].startswith("ghcr.io/remsky/kokoro-fastapi-")
    # The converted bundled model is where the server looks for it by default.
    model = whisper_command.split("--model ")[1].split()[0]
    assert model.startswith("/models/")
    assert svcs["whisper_model"]["command"] == ["stt-broker", "models", "prepare"]
    assert named_volume_mounts(svcs["whispercpp"])["/models"] == named_volume_mounts(svcs["whisper_model"])["/models"]


def test_the_profile_services_stay_out_of_a_plain_up() -> None:
    assert set(services(VARIANTS[0])) == {
        "gateway",
        "stt_models",
        "stt_broker",
        "tts_broker",
        "mqtt_bridge",
        "conversation",
        "llm_model",
        "llm",
        "mosquitto",
        "prometheus",
        "grafana",
    }


def test_every_compose_variable_is_documented() -> None:
    """docs/deploy.md lists what the Compose files interpolate and what they pass through."""
    guide = (REPO / "docs" / "deploy.md").read_text()
    for path in (COMPOSE_FILE, CPU_OVERRIDE, WYOMING_OVERRIDE):
        for name in sorted(interpolated_names(path.read_text())):
            assert f"`{name}`" in guide, f"{name} ({path.name}) is not in docs/deploy.md"
    for name, svc in services(VARIANTS[0]).items():
        for variable, value in env_of(svc).items():
            if value is None:
                assert f"`{variable}`" in guide, f"{name} passes {variable} through: list it in docs/deploy.md"


def test_the_wyoming_override_publishes_the_usual_ports_and_merges_exactly() -> None:
    """Wyoming on, 10300 (STT) and 10200 (TTS) published; its lists are new or supersets of the base's."""
    base = load_yaml(COMPOSE_FILE)["services"]
    override = load_yaml(WYOMING_OVERRIDE)["services"]
    assert set(override) == {"stt_broker", "tts_broker"}
    for name, port in (("stt_broker", 10300), ("tts_broker", 10200)):
        prefix = BY_NAME[name].env_prefix()
        env = env_of(override[name])
        assert env[f"{prefix}WYOMING_ENABLED"] == "true"
        assert env[f"{prefix}WYOMING_PORT"] == str(port)
        assert [with_defaults(p) for p in override[name]["ports"]] == [f"0.0.0.0:{port}:{port}"]
        assert "ports" not in base[name]
        assert set(base[name]["networks"]) <= set(override[name]["networks"])
        assert set(sequences_in(override[name])) == {".ports", ".networks"}
    assert env_of(base["stt_broker"])["STT_EVENTS_URL"] == f"http://mqtt_bridge:{BY_NAME['mqtt_bridge'].default_port()}"


# ---- the LLM ---------------------------------------------------------------------------------


def llama_args(svc: dict[str, Any], *, defaults: bool = True) -> list[str]:
    """llama-server's arguments (the image's entrypoint is llama-server), interpolated with defaults.

    A list in docker-compose.yml; a string in the CPU override, which Compose splits the same way.
    """
    command = svc["command"]
    args = shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]
    return [with_defaults(arg) for arg in args] if defaults else args


def flag(args: list[str], name: str) -> str:
    """The value after ``name`` in an argument list."""
    assert args.count(name) == 1, f"{name} given {args.count(name)} times in {args}"
    return args[args.index(name) + 1]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_the_llm_serves_the_pulled_model_on_the_internal_network(variant: Variant) -> None:
    svcs = services(variant)
    llm, job = svcs["llm"], svcs["llm_model"]
    # The download job alone reaches the internet, once; the server only talks to the stack.
    assert job["networks"] == ["downloads"]
    assert job["restart"] == "no"
    assert not job.get("ports")
    assert llm["networks"] == ["backend"]
    assert not llm.get("ports"), "the LLM is for the conversation service only: never published"
    assert llm["restart"] == "unless-stopped"
    assert llm["depends_on"] == {"llm_model": {"condition": "service_completed_successfully"}}
    check = llm["healthcheck"]
    assert check["test"][:2] == ["CMD", "curl"]
    args = llama_args(llm)
    assert f"http://127.0.0.1:{flag(args, '--port')}/health" in check["test"]
    assert int(check["start_period"].removesuffix("s")) >= 120, "loading a GGUF file takes a while"
    # The job is the conversation image's `models pull`, writing <cache>/llm/<file> into the volume
    # the server reads (read-only) at the same path.
    assert service_for_build(job["build"]) is BY_NAME["conversation"]
    assert job["image"] == svcs["conversation"]["image"]
    assert job["command"][:3] == ["conversation", "models", "pull"]
    assert with_defaults(job["command"][3]) == LLM_MODEL
    cache = env_of(job)["CONVERSATION_CACHE_DIR"] or ""
    assert named_volume_mounts(job)[cache] == "llm_models"
    assert named_volume_mounts(llm)[cache] == "llm_models"
    assert f"llm_models:{cache}:ro" in llm["volumes"]
    assert "llm_models" in variant.document()["volumes"]
    assert flag(args, "-m") == f"{cache}/llm/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    assert flag(args, "--alias") == LLM_MODEL
    assert flag(args, "--host") == "0.0.0.0"
    assert int(flag(args, "-c")) >= 2048
    assert "--jinja" in args, "the model's chat template (and OpenAI tools) need --jinja"
    # The variables that pick another model reach both the job and the server.
    raw = " ".join([*job["command"], *llama_args(llm, defaults=False)])
    for name in ("VOICESTACK_LLM_MODEL", "VOICESTACK_LLM_FILE", "VOICESTACK_LLM_CONTEXT"):
        assert f"${{{name}:-" in raw, name


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_the_conversation_service_answers_with_the_llm(variant: Variant) -> None:
    svcs = services(variant)
    conversation = svcs["conversation"]
    raw = env_of(conversation)
    env = {name: with_defaults(value) for name, value in raw.items() if value is not None}
    args = llama_args(svcs["llm"])
    assert env["CONVERSATION_RESPONDER"] == "openai"
    assert env["CONVERSATION_OPENAI_BASE_URL"] == f"http://llm:{flag(args, '--port')}/v1"
    assert env["CONVERSATION_OPENAI_MODEL"] == flag(args, "--alias")
    for name in ("CONVERSATION_RESPONDER", "CONVERSATION_OPENAI_BASE_URL", "CONVERSATION_OPENAI_MODEL"):
        assert (raw[name] or "").startswith(f"${{{name}:-"), f"{name}: deploy/.env must be able to change it"
    assert conversation["depends_on"]["llm"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_the_llm_image_and_gpu_layers_follow_the_variant(variant: Variant) -> None:
    llm = services(variant)["llm"]
    args = llama_args(llm)
    if variant.id.startswith("gpu"):
        assert llm["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda"
        assert gpu_devices(llm)
        assert flag(args, "--n-gpu-layers") == "99"
        assert "${VOICESTACK_LLM_GPU_LAYERS:-99}" in llama_args(llm, defaults=False)
    else:
        assert llm["image"] == "ghcr.io/ggml-org/llama.cpp:server"
        assert not gpu_devices(llm), "the CPU override drops the GPU reservation"
        assert flag(args, "--n-gpu-layers") == "0"
        # Otherwise the base file's arguments, variables included.
        base = llama_args(services(VARIANTS[0])["llm"], defaults=False)
        layers = base.index("--n-gpu-layers") + 1
        assert llama_args(llm, defaults=False) == [*base[:layers], "0", *base[layers + 1 :]]
