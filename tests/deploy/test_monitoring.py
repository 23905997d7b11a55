"""Prometheus scrapes every service; Grafana's dashboard and the alerts ask for metrics that exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kit import BY_NAME, DEPLOY, SERVICES, VARIANTS, Service
from tests.deploy.metrics import PROMETHEUS_SERIES, exported_metrics, promql_label_values, promql_metric_names

PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
ALERTS = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
PROVIDERS = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "voicestack.yml").read_text())
COMPOSE = VARIANTS[0].document()["services"]


def jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}


def dashboard_targets(path: Path) -> list[tuple[str, str]]:
    """(panel title, expression) of every query in a dashboard, rows' panels included."""
    found = []
    panels = json.loads(path.read_text())["panels"]
    for panel in panels + [p for row in panels for p in row.get("panels", [])]:
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    return found


def all_expressions() -> list[str]:
    exprs = [expr for path in DASHBOARDS for _, expr in dashboard_targets(path)]
    return exprs + [rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    return {service.namespace: exported_metrics(service) for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_prometheus_scrapes_every_replica_of_every_service(service: Service) -> None:
    job = jobs()[service.name]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == [service.name]
    assert service.name in COMPOSE
    assert sd["type"] == "A"
    assert sd["port"] == service.default_port()


def test_prometheus_config_and_rules_are_mounted_where_it_reads_them() -> None:
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in COMPOSE["prometheus"]["volumes"]}
    config_dir = DEPLOY / mounts["/etc/prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in COMPOSE["prometheus"]["command"]
    for rule_file in PROMETHEUS["rule_files"]:
        assert (config_dir / Path(rule_file).relative_to("/etc/prometheus")).is_file()


def test_services_register_their_namespace() -> None:
    """The namespaces the dashboard uses are the ones the app factories pass (where they are written)."""
    for service in SERVICES:
        app = service.source / "app.py"
        if app.exists():
            assert f'namespace="{service.namespace}"' in app.read_text(), service.name


@pytest.mark.parametrize("expr", all_expressions(), ids=[f"query{i}" for i in range(len(all_expressions()))])
def test_queries_ask_for_exported_metrics(expr: str, exported: dict[str, set[str]]) -> None:
    known = set().union(*exported.values()) | PROMETHEUS_SERIES
    names = promql_metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= known, f"unknown metrics {sorted(names - known)} in {expr!r}"
    assert promql_label_values(expr, "job") <= set(jobs()), expr


def test_the_metric_check_reads_expressions_right(exported: dict[str, set[str]]) -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(stt_real_time_factor_bucket{engine=~"a|b"}[$__rate_interval])))'
        ' / on (job) group_left sum without (instance) (up{job="stt_broker"}) and tts_queue_depth'
    )
    assert promql_metric_names(expr) == {"stt_real_time_factor_bucket", "up", "tts_queue_depth"}
    assert promql_label_values(expr, "job") == {"stt_broker"}
    assert {"stt_http_requests_total", "stt_real_time_factor_bucket", "stt_queue_depth"} <= exported["stt"]
    assert {"mqtt_bridge_outbox_depth", "gateway_errors_total", "tts_real_time_factor_count"} <= set().union(
        *exported.values()
    )


def test_the_dashboard_covers_what_operators_watch() -> None:
    (dashboard,) = DASHBOARDS
    exprs = " ".join(expr for _, expr in dashboard_targets(dashboard))
    for service in SERVICES:
        assert f"{service.namespace}_http_requests_total" in exprs, f"request rate of {service.name}"
        assert f"{service.namespace}_errors_total" in exprs, f"errors of {service.name}"
    for needed in (
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        "_http_request_duration_seconds_bucket",
        "stt_real_time_factor_bucket",
        "tts_real_time_factor_bucket",
        "stt_queue_depth",
        "tts_queue_depth",
        "mqtt_bridge_outbox_depth",
        "up{job=~",
    ):
        assert needed in exprs, needed
    health = promql_label_values(next(e for _, e in dashboard_targets(dashboard) if "up{" in e), "job")
    assert health == {s.name for s in SERVICES}


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    (source,) = DATASOURCES["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        assert dashboard["title"]
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
            assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]
            ids = [t["refId"] for t in panel["targets"]]
            assert len(ids) == len(set(ids)), panel["title"]
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them() -> None:
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in COMPOSE["grafana"]["volumes"]}
    (provider,) = PROVIDERS["providers"]
    assert (DEPLOY / mounts[provider["options"]["path"]]).resolve() == (DEPLOY / "grafana" / "dashboards").resolve()
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == (DEPLOY / "grafana" / "provisioning").resolve()
    home = COMPOSE["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).name).is_file()


def test_alerts_are_well_formed() -> None:
    for group in ALERTS["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].startswith("Voicestack")
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]


def test_bridge_health_names_are_compose_services() -> None:
    env = COMPOSE["mqtt_bridge"]["environment"]
    polled = json.loads(env["MQTT_BRIDGE_SERVICES"])
    for name, urls in polled.items():
        (url,) = urls
        assert url == f"http://{name}:{BY_NAME[name].default_port()}"
