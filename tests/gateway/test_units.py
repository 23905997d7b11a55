"""Small parts on their own: replica order, DNS expansion, settings and their legacy names, API keys."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from gateway.auth import ApiKeys, Unauthorized, presented_key
from gateway.health import HealthMonitor, expand
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import SessionLimit, TooManySessions
from gateway.replicas import Replica, ReplicaSet
from gateway.settings import GatewaySettings


def upstream(*urls: str, client: httpx.AsyncClient | None = None) -> ReplicaSet:
    return ReplicaSet("tts", list(urls), client or httpx.AsyncClient(), GatewayMetrics(CollectorRegistry()))


def test_round_robin_over_healthy_replicas_then_the_ones_marked_down() -> None:
    up = upstream("http://a", "http://b", "http://c")
    assert [up.candidates()[0].url for _ in range(4)] == ["http://a", "http://b", "http://c", "http://a"]
    up.mark(up.replicas[1], False, "refused")
    order = [r.url for r in up.candidates()]
    assert order[-1] == "http://b"
    assert set(order[:2]) == {"http://a", "http://c"}
    assert [r.url for r in up.healthy] == ["http://a", "http://c"]


def _fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror("unknown host")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]
        ]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


def test_a_name_with_several_addresses_becomes_several_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        _fake_dns(monkeypatch, {"stt_broker": ["10.0.0.3", "10.0.0.2", "fd00::4"], "single": ["10.0.0.9"]})
        scaled = await expand("http://stt_broker:9082", timeout=1)
        assert [(r.url, r.host) for r in scaled] == [
            ("http://10.0.0.2:9082", "stt_broker:9082"),
            ("http://10.0.0.3:9082", "stt_broker:9082"),
            ("http://[fd00::4]:9082", "stt_broker:9082"),
        ]
        assert [r.url for r in await expand("http://single:9082", 1)] == ["http://single:9082"]
        assert [r.url for r in await expand("http://gone:9082", 1)] == ["http://gone:9082"]
        assert [r.url for r in await expand("http://localhost:9082", 1)] == ["http://localhost:9082"]
        assert [r.url for r in await expand("http://127.0.0.1:9082", 1)] == ["http://127.0.0.1:9082"]

    asyncio.run(scenario())


def test_replicas_follow_dns_and_requests_keep_the_service_host(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        table = {"tts_broker": ["10.0.0.1", "10.0.0.2"]}
        _fake_dns(monkeypatch, table)
        async with httpx.AsyncClient() as client:
            up = upstream("http://tts_broker:8080", client=client)
            monitor = HealthMonitor(
                {"tts": up}, interval=1, timeout=1, cache_seconds=0, resolve=True, resolve_interval=1
            )
            await monitor.resolve_all()
            assert [r.url for r in up.replicas] == ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
            with respx.mock() as mock:
                route = mock.get(url__regex=r"http://10\.0\.0\.\d:8080/v1/voices").respond(200, json={})
                await up.request("GET", "/v1/voices")
                await up.request("GET", "/v1/voices")
            assert {str(c.request.url) for c in route.calls} == {
                "http://10.0.0.1:8080/v1/voices",
                "http://10.0.0.2:8080/v1/voices",
            }
            assert {c.request.headers["host"] for c in route.calls} == {"tts_broker:8080"}
            up.replicas[0].healthy = False
            table["tts_broker"] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # scaled to three
            await monitor.resolve_all()
            assert [r.url for r in up.replicas][-1] == "http://10.0.0.3:8080"
            assert up.replicas[0].healthy is False  # what was known of a replica is kept

    asyncio.run(scenario())


def test_settings_accept_the_guides_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SST_BROKER_URL", "http://stt.internal:9082/")
    monkeypatch.setenv("TTS_BROKER_URL", "http://tts-1:8080, http://tts-2:8080")
    monkeypatch.setenv("SST_REQUEST_TIMEOUT", "600.0")
    monkeypatch.setenv("TTS_REQUEST_TIMEOUT", "60.0")
    monkeypatch.setenv("BACKEND_LOG_LEVEL", "DEBUG")
    settings = GatewaySettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.stt_replicas == ["http://stt.internal:9082"]
    assert settings.tts_replicas == ["http://tts-1:8080", "http://tts-2:8080"]
    assert (settings.stt_timeout, settings.tts_timeout, settings.log_level) == (600.0, 60.0, "DEBUG")
    monkeypatch.setenv("GATEWAY_STT_URLS", "http://primary:9082")
    assert GatewaySettings(_env_file=None).stt_urls == "http://primary:9082"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "overrides",
    [
        {"stt_urls": ""},
        {"tts_urls": "ftp://x"},
        {"stt_urls": "http://x:1/v1"},
        {"events_url": "http://a,http://b"},
        {"cors_origins": "*", "cors_allow_credentials": True},
        {"port": 70000},
    ],
)
def test_bad_settings_fail_at_start_up(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(_env_file=None, **overrides)  # type: ignore[arg-type]


def test_settings_round_trip_through_the_generated_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """What docs/configuration.md and .env.example are generated from loads back as the defaults."""
    from voicestack import configdocs

    monkeypatch.setitem(configdocs.SETTINGS, "gateway", "gateway.settings:GatewaySettings")
    defaults = GatewaySettings(_env_file=None).model_dump()  # type: ignore[call-arg]
    written = [line for line in configdocs.render_env_example().splitlines() if line.startswith("GATEWAY_")]
    assert len(written) > 30
    for line in written:
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    assert GatewaySettings(_env_file=None).model_dump() == defaults  # type: ignore[call-arg]
    assert all(GatewaySettings.model_fields[f].description for f in GatewaySettings.model_fields)
    assert "| `GATEWAY_STT_URLS`<br>*STT_BROKER_URL*<br>*SST_BROKER_URL* |" in configdocs.render_markdown()


def test_api_keys_identify_callers_without_revealing_keys() -> None:
    keys = ApiKeys(["alpha-key", "beta-key"])
    caller = keys.principal("beta-key")
    assert caller.startswith("key:")
    assert "beta" not in caller
    assert keys.principal("beta-key") == caller != keys.principal("alpha-key")
    with pytest.raises(Unauthorized):
        keys.principal("gamma-key")
    assert ApiKeys([]).caller(None, "10.1.2.3") == "ip:10.1.2.3"
    assert presented_key({"authorization": "Bearer  tok "}) == "tok"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "k"}) == "k"
    assert presented_key({}, {"api_key": "q"}) == "q"
    assert presented_key({}) is None


def test_replica_report_shape() -> None:
    replica = Replica("http://a", "http://a")
    assert set(replica.describe()) == {"url", "healthy", "busy", "latency_ms", "error", "checked_at"}


def test_session_limit_counts_per_caller_and_gives_back() -> None:
    limit = SessionLimit(2, "live sessions")
    limit.take("a")
    limit.take("a")
    with pytest.raises(TooManySessions) as refused:
        limit.take("a")
    limit.take("b")  # another caller has its own two
    limit.give_back("a")
    assert refused.value.status_code == 429
    assert refused.value.code == "too_many_sessions"
    assert "at most 2 live sessions" in refused.value.message
    assert limit.held == {"a": 1, "b": 1}
    limit.give_back("a")
    limit.give_back("b")
    limit.give_back("b")  # one too many changes nothing
    assert limit.held == {}
