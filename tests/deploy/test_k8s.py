"""deploy/k8s: the same images on Kubernetes, with probes, GPU requests and consistent wiring."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.kit import DEPLOY, SERVICES, Service, service_for_image, unknown_env_names

K8S = DEPLOY / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCUMENTS = [doc for name in KUSTOMIZATION["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "Deployment"}
K8S_SERVICES = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "Service"}
WYOMING_PORTS = {"stt-broker": 10300, "tts-broker": 10200}
GPU_DEPLOYMENTS = {"stt-broker", "tts-broker"}


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
    assert {service_of(d).name for d in DEPLOYMENTS.values()} == {s.name for s in SERVICES}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
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
        assert container(DEPLOYMENTS[name])["image"].endswith(":cuda")
    else:
        assert "nvidia.com/gpu" not in resources.get("limits", {})


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_environment_names_are_settings(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    env = {item["name"] for item in container(deployment).get("env", [])}
    assert unknown_env_names(service_of(deployment), env) == set()


def test_services_select_their_pods_and_the_brokers_are_headless() -> None:
    for name, svc in K8S_SERVICES.items():
        deployment = DEPLOYMENTS[name.removesuffix("-wyoming")]
        assert svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        (port,) = svc["spec"]["ports"]
        if name.endswith("-wyoming"):
            assert port["port"] == WYOMING_PORTS[deployment["metadata"]["name"]]
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
