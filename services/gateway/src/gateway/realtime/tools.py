"""Function calling: the tools a response offers the model, how it may choose among them, and its calls
as ``function_call`` items.

The tools are the conversation contract's ``ToolSpec`` (Realtime's flattened form); ``tool_choice`` is
kept as the contract takes it: ``auto``, ``none``, ``required`` or the name of the one tool to call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway.realtime.items import Item, item_view
from gateway.realtime.protocol import RealtimeError, ResponseOptions
from voicestack_common.contracts.conversation import TOOL_NAME_PATTERN, ToolSpec

if TYPE_CHECKING:
    from gateway.realtime.session import RealtimeSession

KEYWORDS = ("auto", "none", "required")


def checked_tools(tools: list[ToolSpec], param: str) -> list[ToolSpec]:
    """The tools, each name once."""
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.name in seen:
            raise RealtimeError(f"Duplicate tool name: '{tool.name}'.", param=f"{param}.{index}.name")
        seen.add(tool.name)
    return tools


def parse_choice(value: Any, param: str) -> str:
    """A ``tool_choice`` (``auto``, ``none``, ``required``, a tool's name, ``{"type": "function", "name": ...}``
    or the beta form ``{"type": "function", "function": {"name": ...}}``) as a keyword or a tool's name."""
    if isinstance(value, dict):
        if value.get("type") != "function":
            raise RealtimeError(
                f"Invalid value: '{value.get('type')}'. Supported values are: 'function'.", param=f"{param}.type"
            )
        if extra := sorted(set(value) - {"type", "name", "function"}):
            raise RealtimeError(
                f"Unknown parameter: '{param}.{extra[0]}'.", code="unknown_parameter", param=f"{param}.{extra[0]}"
            )
        function = value.get("function")
        name = value.get("name", function.get("name") if isinstance(function, dict) else None)
        if not isinstance(name, str):
            raise RealtimeError(
                f"Missing required parameter: '{param}.name'.", code="missing_required_parameter", param=f"{param}.name"
            )
        if name in KEYWORDS:
            raise RealtimeError(f"'{name}' is a tool_choice keyword, not a function's name.", param=f"{param}.name")
    elif isinstance(value, str):
        name = value
    else:
        raise RealtimeError(
            "Invalid value: tool_choice is 'auto', 'none', 'required' or {'type': 'function', 'name': ...}.",
            param=param,
        )
    if name not in KEYWORDS and not re.fullmatch(TOOL_NAME_PATTERN, name):
        raise RealtimeError(
            f"Invalid value: '{name}'. Supported values are: 'auto', 'none', 'required' or a function's name.",
            param=param,
        )
    return name


def check_choice(choice: str, tools: list[ToolSpec], param: str) -> None:
    """A choice that names a tool must name one of ``tools``."""
    if choice not in KEYWORDS and choice not in {tool.name for tool in tools}:
        raise RealtimeError(f"tool_choice names no tool offered: '{choice}'.", param=param)


def response_tools(options: ResponseOptions, tools: list[ToolSpec], choice: str) -> tuple[list[ToolSpec], str]:
    """The tools and the choice of one response: its own where it sets them, else the session's."""
    given = options.model_fields_set
    if "tools" in given and options.tools is not None:
        tools = checked_tools(options.tools, "response.tools")
    if "tool_choice" in given and options.tool_choice is not None:
        choice = parse_choice(options.tool_choice, "response.tool_choice")
    check_choice(choice, tools, "response.tool_choice")
    return tools, choice


async def send_call(
    session: RealtimeSession, item: Item, arguments: str, response_id: str, index: int, *, in_conversation: bool
) -> None:
    """The model's call as output ``index`` of a response: added (to the conversation too, unless the
    response is out of band), its arguments (whole: the conversation service sends them at once), done."""
    send, items = session.send, session.conversation.items
    previous = next(reversed(items), None)
    if in_conversation:
        items[item.id] = item
    at = {"response_id": response_id, "output_index": index}
    await send({"type": "response.output_item.added", **at, "item": item_view(item)})
    if in_conversation:
        await send({"type": "conversation.item.created", "previous_item_id": previous, "item": item_view(item)})
    where = {**at, "item_id": item.id, "call_id": item.call_id}
    item.arguments = arguments
    if arguments:
        await send({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
    await send({"type": "response.function_call_arguments.done", **where, "arguments": arguments})
    item.status = "completed"
    await send({"type": "response.output_item.done", **at, "item": item_view(item)})
