"""Responses tools ⇄ chat-completion function tools, and tool calls back into output items.

Every kind a client may send is handled the way its user expects:
- `function`: offered as is; `namespace`: its functions offered as `NAMESPACE__NAME`, and a
  call comes back as a `function_call` carrying `namespace`;
- `custom` (freeform, e.g. Codex's `apply_patch`): a function taking one string `input`
  (its grammar goes into the description), called back as a `custom_tool_call`;
- `local_shell` and client-run `tool_search`: functions with the arguments the client
  reads, called back as `local_shell_call` / `tool_search_call`;
- tools only OpenAI's servers run (`web_search`, `file_search`, …) cannot run here: they are
  left out of the prompt and named in the response's metadata, the turn goes on without.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cortex.dialects.shared import bad, expect, responses_id

SERVER_ONLY = {
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer_use_preview",
    "computer",
    "mcp",
}
_NAME = re.compile(r"^[a-zA-Z0-9_.:-]{1,128}$")
_FREEFORM = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's raw input text."}},
    "required": ["input"],
    "additionalProperties": False,
}
_LOCAL_SHELL = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "argv"},
        "workdir": {"type": "string"},
        "timeout_ms": {"type": "integer"},
    },
    "required": ["command"],
}
_LOCAL_SHELL_DOC = "Runs a command on the user's machine and returns its output."


@dataclass(frozen=True)
class Callable:
    """How a chat function the model may call maps back onto the Responses item kinds."""

    kind: str  # function, custom, local_shell, tool_search
    name: str
    namespace: str | None = None


@dataclass
class ToolKit:
    """The tools of one request, as offered to the neuron and as read back from its calls."""

    chat_tools: list[dict[str, Any]] = field(default_factory=list)
    callables: dict[str, Callable] = field(default_factory=dict)
    server_only: list[str] = field(default_factory=list)

    def offer(self, chat_name: str, target: Callable, description: Any, parameters: Any) -> None:
        if chat_name in self.callables:
            raise bad("tools", f"tool names must be unique ({chat_name!r} repeats)")
        function: dict[str, Any] = {"name": chat_name, "parameters": parameters}
        if description:
            function["description"] = description
        self.callables[chat_name] = target
        self.chat_tools.append({"type": "function", "function": function})

    def callable(self, chat_name: str) -> Callable:
        # A name the model made up stays a plain function call: the client reports it.
        return self.callables.get(chat_name) or Callable("function", chat_name)

    def chat_name(self, name: str, namespace: str | None = None) -> str:
        return f"{namespace}__{name}" if namespace else name


def _name(tool: dict[str, Any], where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad(f"{where}.name", f"must match {_NAME.pattern}")
    return name


def _parameters(tool: dict[str, Any], where: str) -> dict[str, Any]:
    schema = tool.get("parameters")
    if schema is None:
        return {"type": "object", "properties": {}}
    return expect(schema, dict, f"{where}.parameters", "a JSON schema object")


def _custom_description(tool: dict[str, Any], where: str) -> str:
    text = expect(tool.get("description") or "", str, f"{where}.description", "a string")
    fmt = expect(tool.get("format") or {"type": "text"}, dict, f"{where}.format", "an object")
    if fmt.get("type") == "grammar":
        definition = expect(fmt.get("definition"), str, f"{where}.format.definition", "a string")
        text += f"\nIts input must match this {fmt.get('syntax', 'lark')} grammar:\n{definition}"
    elif fmt.get("type") != "text":
        raise bad(f"{where}.format.type", f"must be 'text' or 'grammar', got {fmt.get('type')!r}")
    return text + "\nPass the raw input text as the string `input`."


def add_tool(kit: ToolKit, tool: Any, where: str) -> None:
    """Offer one Responses tool (or record it as server-only)."""
    kind = expect(tool, dict, where, "an object").get("type")
    if kind == "function":
        name = _name(tool, where)
        kit.offer(
            name, Callable("function", name), tool.get("description"), _parameters(tool, where)
        )
    elif kind == "namespace":
        space = _name(tool, where)
        inner = expect(tool.get("tools") or [], list, f"{where}.tools", "an array of tools")
        for i, member in enumerate(inner):
            at = f"{where}.tools.{i}"
            if expect(member, dict, at, "an object").get("type") != "function":
                raise bad(f"{at}.type", "a namespace holds function tools only")
            name = _name(member, at)
            target = Callable("function", name, space)
            kit.offer(
                kit.chat_name(name, space),
                target,
                member.get("description"),
                _parameters(member, at),
            )
    elif kind == "custom":
        name = _name(tool, where)
        kit.offer(name, Callable("custom", name), _custom_description(tool, where), _FREEFORM)
    elif kind == "local_shell":
        kit.offer(
            "local_shell", Callable("local_shell", "local_shell"), _LOCAL_SHELL_DOC, _LOCAL_SHELL
        )
    elif kind == "tool_search" and tool.get("execution", "server") == "client":
        kit.offer(
            "tool_search",
            Callable("tool_search", "tool_search"),
            tool.get("description"),
            _parameters(tool, where),
        )
    elif kind in SERVER_ONLY or kind == "tool_search":
        kit.server_only.append(kind)
    else:
        raise bad(f"{where}.type", f"unsupported tool type {kind!r}")


def build_toolkit(tools: Any) -> ToolKit:
    kit = ToolKit()
    for i, tool in enumerate(expect(tools or [], list, "tools", "an array of tools")):
        add_tool(kit, tool, f"tools.{i}")
    return kit


def chat_tool_choice(choice: Any, kit: ToolKit) -> Any:
    """The chat `tool_choice` for a Responses one (None: leave the neuron's default)."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice if kit.chat_tools or choice != "required" else _no_tools()
    kind = expect(choice, dict, "tool_choice", "'auto', 'none', 'required' or an object").get(
        "type"
    )
    if kind in ("function", "custom"):
        name = expect(choice.get("name"), str, "tool_choice.name", "a string")
        if name not in kit.callables:
            raise bad("tool_choice.name", f"no tool named {name!r} in `tools`")
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise bad("tool_choice.mode", f"must be 'auto' or 'required', got {mode!r}")
        allowed = {
            kit.chat_name(t.get("name", ""), t.get("namespace"))
            for t in choice.get("tools") or []
            if isinstance(t, dict)
        }
        kit.chat_tools = [t for t in kit.chat_tools if t["function"]["name"] in allowed]
        return mode if kit.chat_tools else "none"
    if kind in SERVER_ONLY:
        raise bad(
            "tool_choice.type", f"{kind!r} runs on OpenAI's servers only; it cannot be forced here"
        )
    raise bad("tool_choice.type", f"unsupported tool choice {kind!r}")


def _no_tools() -> Any:
    raise bad("tool_choice", "'required' needs at least one callable tool in `tools`")


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {}


def call_item(
    target: Callable, call_id: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    """The output item for one finished tool call of the model."""
    if target.kind == "custom":
        raw = _arguments(arguments).get("input")
        text = raw if isinstance(raw, str) else arguments
        return {
            "type": "custom_tool_call",
            "id": responses_id("ctc_"),
            "status": status,
            "call_id": call_id,
            "name": target.name,
            "input": text,
        }
    if target.kind == "local_shell":
        args = _arguments(arguments)
        action = {
            "type": "exec",
            "command": args.get("command") or [],
            "timeout_ms": args.get("timeout_ms"),
            "working_directory": args.get("workdir"),
            "env": {},
            "user": None,
        }
        return {
            "type": "local_shell_call",
            "id": responses_id("lsh_"),
            "status": status,
            "call_id": call_id,
            "action": action,
        }
    if target.kind == "tool_search":
        return {
            "type": "tool_search_call",
            "id": responses_id("tsc_"),
            "status": status,
            "call_id": call_id,
            "execution": "client",
            "arguments": _arguments(arguments),
        }
    item = {
        "type": "function_call",
        "id": responses_id("fc_"),
        "status": status,
        "call_id": call_id,
        "name": target.name,
        "arguments": arguments,
    }
    if target.namespace:
        item["namespace"] = target.namespace
    return item
