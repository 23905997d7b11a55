"""Tools the assistant may call: declared in a file, run by this service, never past what the file names.

``CONVERSATION_TOOLS_FILE`` (YAML, or JSON, which is YAML too)::

    tools:
      - type: mqtt_publish           # publish through the MQTT bridge's /v1/publish
        name: set_light
        description: Turn a light on or off.
        topics: [home/kitchen/light/set, home/+/lamp/set]   # the only topics it may publish to
      - type: http                   # call one URL with the model's arguments
        name: weather
        description: The weather for a city.
        url: http://weather.internal/now
        method: GET                  # arguments as the query; POST: as the JSON body
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
      - type: get_time

What the model writes only fills in arguments: an ``http`` tool's URL is the file's, an
``mqtt_publish`` topic must match one of the tool's filters (and the bridge's own allow-list), and
arguments must satisfy the tool's JSON schema. A call that breaks these is refused, and the model
is told why. Every call has a timeout and its result a size cap. A call is keyed by its conversation
and the model's call id: the bridge drops a repeated key and an ``http`` tool gets it as
``Idempotency-Key``, so a retried request does not act twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import jsonschema
import yaml
from paho.mqtt.client import topic_matches_sub
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from voicestack_common.contracts.conversation import TOOL_NAME_PATTERN

_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = Field(default="", max_length=4000)
    timeout: float | None = Field(default=None, gt=0, le=300)
    """Seconds a call may take (unset: ``CONVERSATION_TOOL_TIMEOUT``)."""


class MqttPublishTool(_Tool):
    """Publish a message to one of ``topics`` (MQTT filters: ``+`` and ``#`` match as subscriptions do)."""

    type: Literal["mqtt_publish"]
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1] = 1
    retain: bool = False

    @property
    def parameters(self) -> dict[str, Any]:
        """``topic`` (one of the literal topics, when none has a wildcard) and ``payload``."""
        literal = all("+" not in t and "#" not in t for t in self.topics)
        topic: dict[str, Any] = {"type": "string"}
        if literal:
            topic["enum"] = list(self.topics)
        else:
            topic["description"] = "An MQTT topic matching one of: " + ", ".join(self.topics)
        return {
            "type": "object",
            "properties": {"topic": topic, "payload": {"type": "string", "description": "The message to publish."}},
            "required": ["topic", "payload"],
            "additionalProperties": False,
        }


class HttpTool(_Tool):
    """Call ``url``: the arguments as its query (``GET``) or JSON body (``POST``)."""

    type: Literal["http"]
    url: str
    method: Literal["GET", "POST"] = "POST"
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_NO_ARGUMENTS))
    """The arguments' JSON schema; a call whose arguments do not satisfy it is refused."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("url must be an http(s) URL with a host")
        return value

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a JSON schema: {exc.message}") from None
        return value


class TimeTool(_Tool):
    """The current date and time."""

    type: Literal["get_time"]
    name: str = Field(default="get_time", pattern=TOOL_NAME_PATTERN)
    description: str = "The current date and time. Call it when the user asks what time or day it is."
    timezone: str | None = None
    """The IANA time zone to tell the time in (unset: the server's)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def parameters(self) -> dict[str, Any]:
        """No arguments."""
        return dict(_NO_ARGUMENTS)


Tool = Annotated[MqttPublishTool | HttpTool | TimeTool, Field(discriminator="type")]


class ToolsFile(BaseModel):
    """The tools file."""

    model_config = ConfigDict(extra="forbid")

    tools: list[Tool] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ToolsFile:
        names = [tool.name for tool in self.tools]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"tool names must be unique: {', '.join(repeated)}")
        return self


def load_tools(path: Path) -> list[Tool]:
    """The tools ``path`` declares; ``ValueError`` saying what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the tools file {path}: {exc}") from None
    try:
        return ToolsFile.model_validate(data or {}).tools
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"the tools file {path} is not valid: {where}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: ``ok``, ``error``, ``timeout`` or ``refused``; ``result`` is what the model is told."""

    status: str
    result: str
    error_code: str | None = None
    seconds: float = 0.0


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Failed(_Refused):
    pass


def call_key(conversation_id: str, call_id: str) -> str:
    """The call's idempotency key: the same conversation and call id give the same key."""
    return "tool-" + hashlib.sha256(f"{conversation_id}\0{call_id}".encode()).hexdigest()[:40]


class Toolbox:
    """The declared tools, offered to the model and run when it calls them."""

    def __init__(
        self,
        tools: list[Tool],
        *,
        bridge_url: str,
        timeout: float,
        max_result_chars: int,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.bridge_url = bridge_url.rstrip("/")
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        # No redirects: a tool reaches the URL the file names, not one its server points to.
        self.client = client or httpx.AsyncClient(trust_env=False, follow_redirects=False)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def specs(self) -> list[dict[str, Any]]:
        """The tools in OpenAI's Chat Completions ``tools`` form."""
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in self.tools.values()
        ]

    async def run(self, name: str, arguments: str, key: str) -> Outcome:
        """Run one call; every failure is an ``Outcome`` the model can be told, never an exception."""
        started = time.perf_counter()
        tool = self.tools.get(name)
        timeout = (tool.timeout if tool is not None else None) or self.timeout
        try:
            if tool is None:
                raise _Refused("tool_unknown", f"there is no tool named {name!r}")
            args = _arguments(arguments, tool.parameters)
            async with asyncio.timeout(timeout):
                result = await self._call(tool, args, key)
            outcome = Outcome("ok", result)
        except TimeoutError:
            outcome = Outcome("timeout", f"the tool {name} did not answer within {timeout:g} s", "tool_timeout")
        except _Failed as exc:
            outcome = Outcome("error", exc.message, exc.code)
        except _Refused as exc:
            outcome = Outcome("refused", exc.message, exc.code)
        text = outcome.result
        if len(text) > self.max_result_chars:
            text = text[: self.max_result_chars] + " [cut]"
        return Outcome(outcome.status, text, outcome.error_code, round(time.perf_counter() - started, 3))

    async def _call(self, tool: Tool, args: dict[str, Any], key: str) -> str:
        if isinstance(tool, MqttPublishTool):
            return await self._publish(tool, args, key)
        if isinstance(tool, HttpTool):
            return await self._http(tool, args, key)
        zone = ZoneInfo(tool.timezone) if tool.timezone else None
        moment = datetime.now(zone).astimezone(zone)
        return f"{moment:%A %d %B %Y, %H:%M} ({moment.tzname()}); ISO 8601: {moment.isoformat(timespec='seconds')}"

    async def _publish(self, tool: MqttPublishTool, args: dict[str, Any], key: str) -> str:
        topic, payload = args["topic"], args["payload"]
        if "+" in topic or "#" in topic or not any(topic_matches_sub(f, topic) for f in tool.topics):
            raise _Refused("topic_not_allowed", f"{tool.name} may not publish to {topic!r}")
        body = {"event_id": key, "topic": topic, "payload": payload, "qos": tool.qos, "retain": tool.retain}
        response = await self._send("POST", f"{self.bridge_url}/v1/publish", json=body)
        if response.status_code == 403:
            raise _Refused(_code(response, "topic_not_allowed"), f"the MQTT bridge refused the topic {topic!r}")
        if response.status_code != 202:
            raise _Failed("tool_failed", f"the MQTT bridge answered {response.status_code}")
        return f"published to {topic}"

    async def _http(self, tool: HttpTool, args: dict[str, Any], key: str) -> str:
        headers = {**tool.headers, "Idempotency-Key": key}
        if tool.method == "GET":
            query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
            response = await self._send("GET", tool.url, params=query, headers=headers)
        else:
            response = await self._send("POST", tool.url, json=args, headers=headers)
        if not response.is_success:
            raise _Failed("tool_failed", f"{tool.name} answered HTTP {response.status_code}: {response.text[:200]}")
        return response.text

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise _Failed("tool_unavailable", f"cannot reach the tool's server: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _arguments(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments, checked against the tool's schema (refused otherwise)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise _Refused("invalid_arguments", "the arguments are not JSON") from None
    if not isinstance(value, dict):
        raise _Refused("invalid_arguments", "the arguments must be a JSON object")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        raise _Refused("invalid_arguments", f"invalid arguments: {error.message}")
    return value


def _code(response: httpx.Response, default: str) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return default
    return code if isinstance(code, str) else default
