"""Metric names: what the services register, and what PromQL expressions ask for."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from tests.deploy.kit import Service
from voicestack_common.metrics import HttpMetrics


class _Anything:
    """Stands in for whatever a metrics class reads at scrape time (a pool, a cache, a model registry):
    every attribute is another stand-in, which counts as zero, iterates as empty and can be called."""

    def __getattr__(self, name: str) -> _Anything:
        return self

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return self

    def __iter__(self) -> Iterator[object]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __int__(self) -> int:
        return 0

    def __index__(self) -> int:
        return 0


def _sample_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    return {family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))}


def metrics_classes(service: Service) -> Iterator[type]:
    """Every ``*Metrics`` class in a service's package (found by reading its sources)."""
    package = service.source.name
    for path in sorted(service.source.rglob("*.py")):
        for name in re.findall(r"^class (\w+Metrics)\b", path.read_text(), flags=re.MULTILINE):
            module = ".".join((package, *path.relative_to(service.source).with_suffix("").parts))
            yield getattr(importlib.import_module(module), name)


def exported_metrics(service: Service) -> set[str]:
    """Every sample name a service can export: the shared HTTP metrics and its own classes'.

    Each ``*Metrics`` class is built on a fresh registry, with stand-ins for its other
    constructor arguments, and the registry lists what it registered.
    """
    registry = CollectorRegistry()
    HttpMetrics(registry, service.namespace)
    for cls in metrics_classes(service):
        required = [
            p
            for p in list(inspect.signature(cls).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        cls(registry, *(_Anything() for _ in required))
    return _sample_names(registry)


# Prometheus' own series next to what the services export.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers and ranges skipped)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = match.groups()
        if call is None and word not in _PROMQL_WORDS:
            names.add(word)
    return names


def promql_label_values(expr: str, label: str) -> set[str]:
    """Values an expression matches ``label`` against (``=`` and ``=~`` alternatives split on ``|``)."""
    values: set[str] = set()
    for op, value in re.findall(rf'\b{label}\s*(=~|=)\s*"([^"]*)"', expr):
        values.update(value.split("|") if op == "=~" else [value])
    return values
