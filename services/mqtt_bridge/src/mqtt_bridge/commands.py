"""MQTT commands: requests on ``{prefix}/cmd/{command}``, run through the gateway, answered over MQTT.

The answer goes to the request's MQTT 5 response topic, with its correlation
data; a request without one (MQTT 3.1.1) is answered on
``{prefix}/cmd/{command}/response/{id}``, and one that has neither a response
topic nor a usable ``id`` on ``{prefix}/cmd/errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any

import aiomqtt
from paho.mqtt.properties import Properties

from mqtt_bridge.gateway import GatewayClient
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.mqtt import MqttLink, NotConnected
from mqtt_bridge.schemas import (
    COMMAND_MODELS,
    REQUEST_ID_PATTERN,
    SynthesizeCommand,
    TranscribeCommand,
    failure,
    success,
)
from mqtt_bridge.topics import COMMANDS, Command, Topics, valid_publish_topic
from voicestack_common.errors import InvalidRequest, PayloadTooLarge, Saturated, VoicestackError, validate_as
from voicestack_common.jsonbody import parse_json
from voicestack_common.logging import new_request_id

logger = logging.getLogger(__name__)
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class CommandService:
    """Parses, bounds and executes commands; every request gets exactly one answer."""

    def __init__(
        self,
        link: MqttLink,
        topics: Topics,
        gateway: GatewayClient,
        metrics: BridgeMetrics,
        *,
        concurrency: int,
        max_bytes: int,
    ) -> None:
        self.link = link
        self.topics = topics
        self.gateway = gateway
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        for name in COMMANDS:
            link.subscribe(topics.command(name), self._handler(name))

    def _handler(self, name: Command) -> Any:
        def on_message(message: aiomqtt.Message) -> None:
            task = asyncio.create_task(self.handle(name, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return on_message

    async def handle(self, name: Command, message: aiomqtt.Message) -> None:
        """Answer one request."""
        started = time.perf_counter()
        response_topic, correlation = _reply_properties(message)
        request_id: str | None = None
        try:
            payload = (
                message.payload
                if isinstance(message.payload, bytes | bytearray)
                else str(message.payload or "").encode()
            )
            if len(payload) > self.max_bytes:
                raise PayloadTooLarge(f"the command is larger than {self.max_bytes} bytes", code="command_too_large")
            raw = _parse(payload)
            if isinstance(raw.get("id"), str) and _REQUEST_ID.match(raw["id"]):
                request_id = raw["id"]
            command = _validate(name, raw)
            if response_topic is None and request_id is None:
                # Nobody could be told the result: do not spend the gateway's time on it.
                raise InvalidRequest(
                    "without an MQTT 5 response topic, the request needs an 'id' "
                    "(the answer goes to .../response/{id})",
                    code="missing_id",
                )
            body = success(name, request_id, await self._execute(command, request_id))
            outcome = "ok"
        except VoicestackError as exc:
            body = failure(name, request_id, exc)
            outcome = exc.code
        except Exception:
            logger.exception("command %s failed unexpectedly", name)
            body = failure(name, request_id, VoicestackError("the command failed"))
            outcome = "internal_error"
        self.metrics.commands.labels(command=name, outcome=outcome).inc()
        logger.info(
            "command answered",
            extra={
                "command": name,
                "id": request_id,
                "outcome": outcome,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        await self._reply(name, request_id, response_topic, correlation, body)

    async def _execute(self, command: SynthesizeCommand | TranscribeCommand, request_id: str | None) -> Any:
        if self._active >= 2 * self.concurrency:
            raise Saturated("too many commands are running; try again shortly")
        self._active += 1
        try:
            async with self._slots:
                trace_id = f"mqtt-{request_id}" if request_id else new_request_id()
                if isinstance(command, SynthesizeCommand):
                    return await self.gateway.synthesize(command, trace_id)
                return await self.gateway.transcribe(command, trace_id)
        finally:
            self._active -= 1

    async def _reply(
        self,
        name: Command,
        request_id: str | None,
        response_topic: str | None,
        correlation: bytes | None,
        body: dict[str, Any],
    ) -> None:
        properties = self.link.json_properties(fresh=True)
        if response_topic is not None:
            topic = response_topic
            if properties is not None and correlation is not None:
                properties.CorrelationData = correlation
        elif request_id is not None:
            topic = self.topics.command_response(name, request_id)
        else:
            topic = self.topics.command_errors
        try:
            await self.link.publish(topic, json.dumps(body, separators=(",", ":")).encode(), properties=properties)
        except NotConnected as exc:
            logger.warning(
                "could not deliver a command answer", extra={"command": name, "id": request_id, "reason": str(exc)}
            )

    async def close(self) -> None:
        """Cancel commands still running."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _reply_properties(message: aiomqtt.Message) -> tuple[str | None, bytes | None]:
    """The MQTT 5 response topic (when publishable) and correlation data of a request."""
    properties: Properties | None = message.properties
    if properties is None:
        return None, None
    topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    if not isinstance(topic, str) or not valid_publish_topic(topic):
        topic = None
    return topic, bytes(correlation) if correlation is not None else None


def _parse(payload: bytes) -> dict[str, Any]:
    """The request as a JSON object."""
    raw = parse_json(payload, "command")
    if not isinstance(raw, dict):
        raise InvalidRequest("the command must be a JSON object", code="invalid_command")
    return raw


def _validate(name: Command, raw: dict[str, Any]) -> SynthesizeCommand | TranscribeCommand:
    """The typed request, or ``invalid_command`` saying which field is wrong."""
    return validate_as(COMMAND_MODELS[name], raw, code="invalid_command", what="command")
