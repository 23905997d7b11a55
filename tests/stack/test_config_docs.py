"""docs/configuration.md and .env.example match the settings classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicestack import configdocs

REPO = Path(__file__).resolve().parents[2]


def test_configuration_docs_are_current() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == configdocs.render_markdown(), (
        "regenerate: uv run voicestack config docs > docs/configuration.md"
    )


def test_env_example_is_current() -> None:
    assert (REPO / ".env.example").read_text() == configdocs.render_env_example(), (
        "regenerate: uv run voicestack config env > .env.example"
    )


@pytest.mark.parametrize("service", list(configdocs.SETTINGS))
def test_every_env_example_line_is_a_real_setting(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading .env.example as the environment gives each service its defaults back."""
    cls = configdocs.settings_class(service)
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            if value:
                monkeypatch.setenv(name, value)
    loaded = cls(_env_file=None)  # type: ignore[call-arg]
    defaults = cls(_env_file=None, **{})  # type: ignore[call-arg]
    assert loaded.model_dump() == defaults.model_dump()
    every_name = {n for field in cls.model_fields for n in configdocs.env_names(cls, field)}
    assert {
        f.partition("=")[0]
        for f in (REPO / ".env.example").read_text().splitlines()
        if f and not f.startswith("#") and f.startswith(cls.model_config.get("env_prefix", "") or "")
    } <= every_name
