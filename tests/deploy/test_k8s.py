"""deploy/k8s: the same images on Kubernetes, with probes, GPU requests and consistent wiring."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.kit import BY_NAME, DEPLOY, SERVICES, Service, service_for_image, unknown_env_names

K8S = DEPLOY / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCUMENTS = [doc for name in KUSTOMIZATION["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "Deployment"}
K8S_SERVICES = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "Service"}
OURS = {
    name: d
    for name, d in DEPLOYMENTS.items()
    if service_for_image(d["spec"]["template"]["spec"]["containers"][0]["image"]) is not None
}
"""Deployments of voicestack's images; the rest (llama.cpp's server) are third-party images."""
WYOMING_PORTS = {"stt-broker": 10300, "tts-broker": 10200}
GPU_DEPLOYMENTS = {"stt-broker", "tts-broker", "llm"}
LLM_PORT = 8080
LLM_MODEL = "qwen2.5-1.5b-instruct"


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def service_of(deployment: dict[str, Any]) -> Service:
    service = service_for_image(container(deployment)["image"])
    assert service is not None, deployment["metadata"]["name"]
    return service


def test_every_file_is_listed_and_parses() -> None:
    listed = set(KUSTOMIZATION["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert all(doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name") for doc in DOCUMENTS)


def test_every_service_has_a_deployment() -> None:
    assert {service_of(d).name for d in OURS.values()} == {s.name for s in SERVICES}
    assert set(DEPLOYMENTS) - set(OURS) == {"llm"}


@pytest.mark.parametrize("name", sorted(OURS))
def test_deployments_have_probes_on_the_health_endpoints(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    spec = container(deployment)
    port = service_of(deployment).default_port()
    wyoming = [WYOMING_PORTS[name]] if name in WYOMING_PORTS else []
    assert [p["containerPort"] for p in spec["ports"]] == [port, *wyoming]
    port_name = spec["ports"][0]["name"]
    assert spec["readinessProbe"]["httpGet"] == {"path": service_of(deployment).ready_path, "port": port_name}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}
    assert spec["resources"]["requests"]["cpu"]
    assert spec["resources"]["requests"]["memory"]
    assert spec["resources"]["limits"]["memory"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_gpu_deployments_request_nvidia_gpus(name: str) -> None:
    resources = container(DEPLOYMENTS[name])["resources"]
    if name in GPU_DEPLOYMENTS:
        assert resources["limits"]["nvidia.com/gpu"] == 1
        assert resources["requests"].get("nvidia.com/gpu", 1) == resources["limits"]["nvidia.com/gpu"]
        assert container(DEPLOYMENTS[name])["image"].endswith("cuda")  # :cuda, llama.cpp's :server-cuda
    else:
        assert "nvidia.com/gpu" not in resources.get("limits", {})


@pytest.mark.parametrize("name", sorted(OURS))
def test_environment_names_are_settings(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    env = {item["name"] for item in container(deployment).get("env", [])}
    assert unknown_env_names(service_of(deployment), env) == set()


def test_init_containers_of_our_images_set_settings_only() -> None:
    for deployment in DEPLOYMENTS.values():
        for init in deployment["spec"]["template"]["spec"].get("initContainers", []):
            service = service_for_image(init["image"])
            assert service is not None, f"{init['name']}: an init container runs one of our images"
            env = {item["name"] for item in init.get("env", [])}
            assert unknown_env_names(service, env) == set(), init["name"]


def test_services_select_their_pods_and_the_brokers_are_headless() -> None:
    for name, svc in K8S_SERVICES.items():
        deployment = DEPLOYMENTS[name.removesuffix("-wyoming")]
        assert svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        (port,) = svc["spec"]["ports"]
        if name.endswith("-wyoming"):
            assert port["port"] == WYOMING_PORTS[deployment["metadata"]["name"]]
        elif name not in OURS:
            assert port["port"] == LLM_PORT
        else:
            assert port["port"] == service_of(deployment).default_port()
        assert port["targetPort"] in [p["name"] for p in container(deployment)["ports"]]
    # Headless: DNS lists every ready pod, which the gateway spreads requests over.
    assert K8S_SERVICES["stt-broker"]["spec"]["clusterIP"] == "None"
    assert K8S_SERVICES["tts-broker"]["spec"]["clusterIP"] == "None"


def test_the_gateway_and_bridge_point_at_the_kubernetes_services() -> None:
    gateway = {e["name"]: e.get("value") for e in container(DEPLOYMENTS["gateway"])["env"]}
    assert gateway["GATEWAY_STT_URLS"] == "http://stt-broker:9082"
    assert gateway["GATEWAY_TTS_URLS"] == "http://tts-broker:8080"
    assert gateway["GATEWAY_EVENTS_URL"] == "http://mqtt-bridge:9090"
    bridge = {e["name"]: e.get("value") for e in container(DEPLOYMENTS["mqtt-bridge"])["env"]}
    for urls in json.loads(bridge["MQTT_BRIDGE_SERVICES"]).values():
        host = urls[0].split("//")[1].split(":")[0]
        assert host in K8S_SERVICES
    assert DEPLOYMENTS["mqtt-bridge"]["spec"]["replicas"] == 1
    assert DEPLOYMENTS["mqtt-bridge"]["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("name", sorted(WYOMING_PORTS))
def test_the_brokers_serve_wyoming_behind_a_service_of_their_own(name: str) -> None:
    spec = container(DEPLOYMENTS[name])
    env = {e["name"]: e.get("value") for e in spec["env"]}
    prefix = service_of(DEPLOYMENTS[name]).env_prefix()
    assert env[f"{prefix}WYOMING_ENABLED"] == "true"
    assert env[f"{prefix}WYOMING_PORT"] == str(WYOMING_PORTS[name])
    assert {"name": "wyoming", "containerPort": WYOMING_PORTS[name]} in spec["ports"]
    service = K8S_SERVICES[f"{name}-wyoming"]["spec"]
    assert "clusterIP" not in service  # kube-proxy spreads connections over the pods
    assert service["ports"] == [{"name": "wyoming", "port": WYOMING_PORTS[name], "targetPort": "wyoming"}]
    if name == "stt-broker":
        assert env["STT_EVENTS_URL"] == "http://mqtt-bridge:9090"


def test_kustomize_renders_the_set() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the other checks read the manifests directly)")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert all(doc["metadata"].get("namespace") == "voicestack" for doc in rendered if doc["kind"] != "Namespace")
    assert len(rendered) == len(DOCUMENTS)


def env_values(spec: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in spec.get("env", [])}


def arg(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} given {args.count(name)} times in {args}"
    return args[args.index(name) + 1]


def test_the_llm_pulls_its_model_then_serves_it_with_probes_and_a_gpu() -> None:
    deployment = DEPLOYMENTS["llm"]
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    assert spec["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    assert "command" not in spec, "the image's entrypoint is llama-server: give its arguments"
    args = [str(a) for a in spec["args"]]
    assert arg(args, "--port") == str(LLM_PORT)
    assert arg(args, "--host") == "0.0.0.0"
    assert arg(args, "--alias") == LLM_MODEL
    assert int(arg(args, "--n-gpu-layers")) > 0
    assert "--jinja" in args
    assert spec["ports"] == [{"name": "http", "containerPort": LLM_PORT}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert spec["resources"]["requests"]["cpu"]
    assert spec["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    # The init container pulls into the volume the server reads, read-only, at the same path.
    (init,) = pod["initContainers"]
    assert service_for_image(init["image"]) is BY_NAME["conversation"]
    assert init["command"] == ["conversation", "models", "pull", LLM_MODEL]
    cache = env_values(init)["CONVERSATION_CACHE_DIR"]
    (init_mount,) = [m for m in init["volumeMounts"] if m["mountPath"] == cache]
    (mount,) = [m for m in spec["volumeMounts"] if m["name"] == init_mount["name"]]
    assert mount["mountPath"] == cache
    assert mount.get("readOnly") is True
    assert init_mount.get("readOnly") is not True
    assert arg(args, "-m") == f"{cache}/llm/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in DOCUMENTS)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_conversation_service_answers_with_the_llm() -> None:
    env = env_values(container(DEPLOYMENTS["conversation"]))
    assert env["CONVERSATION_RESPONDER"] == "openai"
    assert env["CONVERSATION_OPENAI_BASE_URL"] == f"http://llm:{LLM_PORT}/v1"
    assert env["CONVERSATION_OPENAI_MODEL"] == LLM_MODEL
    assert K8S_SERVICES["llm"]["spec"]["ports"][0]["port"] == LLM_PORT
