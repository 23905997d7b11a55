"""Containers run as a non-root user with a read-only root filesystem (compose and Kubernetes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import parse_dockerfile
from tests.deploy.kit import DOCKERFILE, SERVICES

REPO = Path(__file__).resolve().parents[2]
OURS = ("gateway", "stt_broker", "tts_broker", "mqtt_bridge", "conversation")


def _k8s_deployments() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ("Deployment", "StatefulSet"):
                found[doc["metadata"]["name"]] = doc
    return found


DEPLOYMENTS = _k8s_deployments()


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_k8s_pods_are_non_root_with_a_read_only_root(name: str) -> None:
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, "uploads spool to /tmp: it needs a writable volume"


def test_compose_services_are_non_root_with_a_read_only_root() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    for name in OURS:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    images = {stage.name: stage for stage in parse_dockerfile(DOCKERFILE)}
    targets = [target for service in SERVICES for target in service.targets]
    assert len(targets) == 7
    for target in targets:
        users = images[target].values("USER")
        assert users, target
        assert users[-1] not in ("root", "0"), target
