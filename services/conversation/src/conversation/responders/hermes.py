"""Tool calls in the Hermes form (what Qwen2.5 is trained on), for models whose chat template does not
take OpenAI ``tools``: the tools described in the system message, calls written by the model as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` and results given back as
``<tool_response>...</tool_response>``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from conversation.responders.base import ResponderInvalid, ToolCallRequest

_HERMES_TOOLS = """

# Tools

You may call one or more functions to assist with the user query. The functions:
<tools>
{tools}
</tools>

For each call, return a JSON object with the function name and arguments within <tool_call></tool_call> tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def hermes_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat for a template that does not take tools: the tools described in the system message, calls
    as ``<tool_call>`` text of the assistant, results as ``<tool_response>`` text of the user (Hermes)."""
    described = _HERMES_TOOLS.format(tools="\n".join(json.dumps(tool) for tool in tools))
    out: list[dict[str, Any]] = []
    if messages and messages[0]["role"] == "system":
        out.append({"role": "system", "content": messages[0]["content"] + described})
        messages = messages[1:]
    else:
        out.append({"role": "system", "content": described.strip()})
    for message in messages:
        if message["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{message['content']}\n</tool_response>"})
        elif message.get("tool_calls"):
            calls = "".join(
                f"<tool_call>\n{json.dumps({'name': c['function']['name'], 'arguments': _loads(c)})}\n</tool_call>"
                for c in message["tool_calls"]
            )
            out.append({"role": "assistant", "content": (message.get("content") or "") + calls})
        else:
            out.append(message)
    return out


def _loads(call: dict[str, Any]) -> Any:
    try:
        return json.loads(call["function"]["arguments"])
    except ValueError:
        return call["function"]["arguments"]


class ToolCallText:
    """Tool calls in a model's text, Hermes style (Qwen2.5): ``<tool_call>{"name": ..., "arguments": ...}
    </tool_call>``. ``push`` passes on the text outside them as it comes (holding back what may be the
    start of a tag); ``finish`` returns the rest and the calls."""

    OPEN, CLOSE = "<tool_call>", "</tool_call>"

    def __init__(self) -> None:
        self.pending = ""
        self.inside = False
        self.bodies: list[str] = []

    def push(self, text: str) -> str:
        """The part of the text so far that is plainly not a tool call."""
        self.pending += text
        out = ""
        while self.pending:
            tag = self.CLOSE if self.inside else self.OPEN
            at = self.pending.find(tag)
            if at >= 0:
                if self.inside:
                    self.bodies.append(self.pending[:at])
                else:
                    out += self.pending[:at]
                self.pending = self.pending[at + len(tag) :]
                self.inside = not self.inside
                continue
            if self.inside:
                break
            keep = next((n for n in range(len(tag) - 1, 0, -1) if self.pending.endswith(tag[:n])), 0)
            out += self.pending[: len(self.pending) - keep]
            self.pending = self.pending[len(self.pending) - keep :]
            break
        return out

    def finish(self) -> tuple[str, list[ToolCallRequest]]:
        """The text held back, and the calls (a call the model did not close counts when it parses)."""
        if self.inside:
            self.bodies.append(self.pending)
            rest = ""
        else:
            rest = self.pending
        calls = []
        for body in self.bodies:
            try:
                value = json.loads(body)
            except ValueError:
                raise ResponderInvalid("the local model wrote a tool call that is not JSON") from None
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                raise ResponderInvalid("the local model wrote a tool call without a name")
            arguments = value.get("arguments", {})
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append(ToolCallRequest(f"call_{uuid.uuid4().hex[:24]}", value["name"], text))
        return rest.strip() and rest, calls
