"""Every environment variable the deployment sets is one the service reads, with a value it accepts."""

from __future__ import annotations

import os

import pytest

from tests.deploy.dockerfile import service_stages
from tests.deploy.kit import (
    PREFIXES,
    SERVICES,
    VARIANTS,
    Service,
    Variant,
    env_of,
    service_for_build,
    unknown_env_names,
    with_defaults,
)


def compose_services(variant: Variant) -> list[tuple[str, Service, dict[str, str | None]]]:
    """(compose name, voicestack service, environment) for every service built from our Dockerfiles."""
    found = []
    for name, svc in variant.document()["services"].items():
        service = service_for_build(svc.get("build") or {})
        if service is not None:
            found.append((name, service, env_of(svc)))
    return found


def load_settings(service: Service, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the service's settings from exactly ``env`` (validators run, as at start-up)."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    service.settings_class()(_env_file=None)


CASES = [(variant, name) for variant in VARIANTS for name, _, _ in compose_services(variant)]


@pytest.mark.parametrize(("variant", "name"), CASES, ids=[f"{v.id}-{n}" for v, n in CASES])
def test_compose_environment_names_are_settings(variant: Variant, name: str) -> None:
    _, service, env = next(c for c in compose_services(variant) if c[0] == name)
    assert unknown_env_names(service, set(env)) == set()


@pytest.mark.parametrize(("variant", "name"), CASES, ids=[f"{v.id}-{n}" for v, n in CASES])
def test_compose_environment_values_are_accepted(variant: Variant, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixed values (pass-through ones unset) load: JSON maps, URLs, booleans, paths."""
    _, service, env = next(c for c in compose_services(variant) if c[0] == name)
    load_settings(service, {k: with_defaults(v) for k, v in env.items() if v is not None}, monkeypatch)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_dockerfile_environment_is_settings(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    for stage in service_stages(service):
        ours = {k: v for k, v in stage.env().items() if k.startswith(PREFIXES)}
        assert unknown_env_names(service, set(ours)) == set(), f"stage {stage.name or stage.base}"
        load_settings(service, ours, monkeypatch)


def test_the_name_check_catches_a_typo() -> None:
    stt = next(s for s in SERVICES if s.name == "stt_broker")
    assert unknown_env_names(stt, {"STT_MODEL_PATH", "SST_BROKER_PORT", "STT_MODELPATH"}) == {"STT_MODELPATH"}
