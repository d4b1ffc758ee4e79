"""Anthropic `tools` / `tool_choice` → OpenAI function tools.

Only client tools (`custom`, the default) can be offered to a local model: the
gateway cannot run Anthropic's server tools (web search, code execution, …), and
Anthropic-defined client tools (`bash_…`, `text_editor_…`) come without a schema.
"""

from __future__ import annotations

import re
from typing import Any

from cortex.dialects.shared import bad, expect

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# Tools Anthropic's servers run themselves (their type names, without the date suffix).
_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution", "tool_search", "mcp_toolset")


def _tool_type(tool: dict[str, Any], at: str) -> None:
    kind = tool.get("type", "custom")
    if kind in ("custom", None):
        return
    if str(kind).startswith(_SERVER_TOOLS):
        raise bad(
            f"{at}.type",
            f"{kind!r} is a server tool, which this server cannot run; "
            "offer it as a custom tool that your client runs",
        )
    raise bad(f"{at}.type", f"tool type {kind!r} is not supported; only custom tools are")


def to_openai_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools, names = [], set()
    for i, tool in enumerate(expect(body.get("tools") or [], list, "tools", "an array of tools")):
        at = f"tools.{i}"
        _tool_type(expect(tool, dict, at, "an object"), at)
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise bad(f"{at}.name", f"must match {_TOOL_NAME.pattern}")
        if name in names:
            raise bad(f"{at}.name", f"tool names must be unique ({name!r} repeats)")
        names.add(name)
        schema = expect(
            tool.get("input_schema"), dict, f"{at}.input_schema", "a JSON schema object"
        )
        if schema.get("type") != "object":
            raise bad(f"{at}.input_schema.type", "must be 'object'")
        function = {"name": name, "parameters": schema}
        if tool.get("description") is not None:
            function["description"] = expect(
                tool["description"], str, f"{at}.description", "a string"
            )
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(body: dict[str, Any], names: set[str], out: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = expect(choice, dict, "tool_choice", "an object").get("type")
    if kind not in ("auto", "any", "tool", "none"):
        raise bad("tool_choice.type", f"must be one of 'auto', 'any', 'tool', 'none', got {kind!r}")
    if not names:
        if kind in ("any", "tool"):
            raise bad("tool_choice", f"type {kind!r} needs at least one tool in `tools`")
        return  # auto/none without tools: plain chat
    if kind == "tool":
        name = expect(choice.get("name"), str, "tool_choice.name", "a string")
        if name not in names:
            raise bad("tool_choice.name", f"no tool named {name!r} in `tools`")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if kind != "none" and expect(
        choice.get("disable_parallel_tool_use", False),
        bool,
        "tool_choice.disable_parallel_tool_use",
        "a boolean",
    ):
        out["parallel_tool_calls"] = False


def with_tools(body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """`out` with the request's tools and tool choice in OpenAI's shape."""
    tools = to_openai_tools(body)
    if tools:
        out["tools"] = tools
    _tool_choice(body, {tool["function"]["name"] for tool in tools}, out)
    return out
