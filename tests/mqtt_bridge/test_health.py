"""Health polling: small real HTTP services on loopback, the bridge in process, a real mosquitto."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from devkit.mqtt_kit import Mosquitto, Received, subscriber
from devkit.servers import serve
from mqtt_bridge.app import create_app
from mqtt_bridge.settings import BridgeSettings


def stand_in_service(state: dict[str, bool]) -> FastAPI:
    """A service with only /healthz and /readyz; ``state["ready"]`` decides readiness."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state["ready"]
        return JSONResponse({"status": "ready" if ready else "not_ready"}, status_code=200 if ready else 503)

    return app


@contextlib.contextmanager
def service(ready: bool = True) -> Iterator[tuple[str, dict[str, bool]]]:
    """A stand-in service on a free port, and the switch of its readiness."""
    state = {"ready": ready}
    with serve(stand_in_service(state), ready_path="/healthz") as url:
        yield url, state


def status_is(status: str) -> Callable[[Received], bool]:
    """Match a health payload by its status."""
    return lambda message: message.json()["status"] == status


def test_health_topics_follow_the_services(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    interval = 1.0
    with contextlib.ExitStack() as alpha_running, service() as (beta1_url, beta1), service() as (beta2_url, _):
        alpha_url, _ = alpha_running.enter_context(service())
        # A generous probe timeout: this test tells "not ready" from "down", and a probe that
        # times out on a busy CI machine would read as "down".
        settings = settings_for(
            services={"alpha": [alpha_url], "beta": [beta1_url, beta2_url]},
            health_interval=interval,
            health_heartbeat=3600,
            health_timeout=3.0,
        )
        with subscriber(mosquitto.port, [f"{prefix}/health/#", f"{prefix}/health"]) as sub, serve(create_app(settings)):
            alpha = sub.wait_for(f"{prefix}/health/alpha").json()
            assert alpha["status"] == "up"
            assert alpha["up"] is True
            assert alpha["replicas"][0]["url"] == alpha_url
            assert alpha["replicas"][0]["ready"] is True
            assert sub.wait_for(f"{prefix}/health/beta").json()["status"] == "up"
            assert sub.wait_for(f"{prefix}/health").json()["services"] == {"alpha": "up", "beta": "up"}

            beta1["ready"] = False
            beta = sub.wait_for(f"{prefix}/health/beta", status_is("degraded"), timeout=3 * interval).json()
            assert beta["up"] is True
            assert [r["status"] for r in beta["replicas"]] == ["not_ready", "up"]
            assert beta["replicas"][0]["error"] == "/readyz answered 503"
            overall = sub.wait_for(f"{prefix}/health", status_is("degraded")).json()
            assert overall["services"]["beta"] == "degraded"
            # Unchanged state is not re-sent between heartbeats.
            assert len(sub.on(f"{prefix}/health/alpha")) == 1
            with subscriber(mosquitto.port, [f"{prefix}/health/#"]) as late:
                retained = late.wait_for(f"{prefix}/health/beta")
                assert retained.retain
                assert retained.json()["status"] == "degraded"

            alpha_running.close()  # returns once the service has stopped listening
            stopped_at = time.monotonic()
            down = sub.wait_for(f"{prefix}/health/alpha", status_is("down"), timeout=10).json()
            assert time.monotonic() - stopped_at <= 2 * interval
            assert down["up"] is False
            assert down["replicas"][0]["live"] is False
            assert down["since"] > alpha["since"]


def test_heartbeat_republishes_unchanged_health(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    with service() as (url, _):
        settings = settings_for(services={"gamma": [url]}, health_interval=0.2, health_heartbeat=0.5)
        with subscriber(mosquitto.port, [f"{prefix}/health/gamma"]) as sub, serve(create_app(settings)):
            first = sub.wait_for(f"{prefix}/health/gamma").json()
            later = sub.wait_for(
                f"{prefix}/health/gamma", lambda m: m.json()["checked_at"] != first["checked_at"], timeout=5
            ).json()
            assert later["status"] == first["status"] == "up"
            assert later["since"] == first["since"]


def test_a_service_that_never_answers_is_down(
    mosquitto: Mosquitto, prefix: str, settings_for: Callable[..., BridgeSettings]
) -> None:
    settings = settings_for(services={"ghost": ["http://127.0.0.1:9"]})
    with (
        subscriber(mosquitto.port, [f"{prefix}/health/ghost", f"{prefix}/health"]) as sub,
        serve(create_app(settings)) as url,
    ):
        ghost = sub.wait_for(f"{prefix}/health/ghost").json()
        assert ghost["status"] == "down"
        assert ghost["replicas"][0]["error"].startswith("/healthz")
        assert sub.wait_for(f"{prefix}/health").json()["status"] == "down"
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'mqtt_bridge_health_probes_total{result="down",service="ghost"}' in metrics
