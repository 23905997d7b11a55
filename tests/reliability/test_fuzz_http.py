"""Schema-driven fuzzing (schemathesis over each service's own OpenAPI document) against the real apps.

Every generated request (valid and invalid bodies, parameters and content types) must get a
status the operation documents, with a body (and Content-Type) that matches what it declares,
and never a 5xx. ``VOICESTACK_FUZZ_EXAMPLES`` sets examples per operation (default 50), and
``VOICESTACK_FUZZ_INFERENCE_EXAMPLES`` those of operations that run inference (default 8).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devkit.mqtt_kit import Mosquitto, fast_settings
from devkit.servers import serve
from tests.reliability.figures import record

EXAMPLES = int(os.environ.get("VOICESTACK_FUZZ_EXAMPLES", "50"))
# Operations that run inference get fewer (each example may synthesize or transcribe for seconds).
INFERENCE_EXAMPLES = int(os.environ.get("VOICESTACK_FUZZ_INFERENCE_EXAMPLES", "8"))
INFERENCE = ("transcri", "synthes", "speech", "audio-stream")
FIXTURES = {
    "gateway": "fuzz_gateway_url",
    "stt_broker": "stt_url",
    "tts_broker": "tts_url",
    "mqtt_bridge": "bridge_url",
    "conversation": "conversation_url",
}
# "No 5xx" is judged below: a 503 with Retry-After is the documented answer of a saturated broker
# (one worker here, and a batch can fill its queue), not a fault.
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def bridge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The MQTT bridge on a real mosquitto."""
    from mqtt_bridge.app import create_app

    workdir = tmp_path_factory.mktemp("bridge")
    broker = Mosquitto(workdir)
    broker.start()
    try:
        with serve(create_app(fast_settings(broker.url, "fuzz", Path(workdir) / "outbox.sqlite3"))) as url:
            yield url
    finally:
        broker.stop()


def fuzz(url: str) -> dict[str, Any]:
    """Every operation of the service at ``url``; returns the counts and the failures."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    outcome: dict[str, Any] = {"sent": 0, "server_errors": 0, "saturated": 0, "failures": []}
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), url, outcome)
    return outcome


def _fuzz_operation(operation: Any, url: str, outcome: dict[str, Any]) -> None:
    inference = any(word in operation.path for word in INFERENCE)

    @settings(
        max_examples=INFERENCE_EXAMPLES if inference else EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        outcome["sent"] += 1
        response = case.call(base_url=url, timeout=600)
        if response.status_code == 503 and "retry-after" in response.headers:
            outcome["saturated"] += 1
        elif response.status_code >= 500:
            outcome["server_errors"] += 1
            outcome["failures"].append(f"{operation.label}: {response.status_code} {response.text[:300]}")
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # collect every failure; the test fails on any
            outcome["failures"].append(f"{operation.label}: {str(exc)[:600]}")

    run()


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("service", ["gateway", "stt_broker", "tts_broker", "mqtt_bridge", "conversation"])
def test_every_operation_answers_as_documented(service: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(FIXTURES[service])
    outcome = fuzz(url)
    record(
        "fuzz",
        service,
        {
            "requests": outcome["sent"],
            "5xx": outcome["server_errors"],
            "503_retry_after": outcome["saturated"],
            "failures": len(outcome["failures"]),
        },
    )
    assert outcome["sent"] > 0
    assert outcome["failures"] == [], "\n\n".join(outcome["failures"][:10])
