"""Responses input items → chat messages (the conversation the neuron renders).

Messages keep their role (`developer` is the chat `system`); tool calls of every kind
become an assistant turn's `tool_calls`, their outputs `tool` messages; a `reasoning`
item sent back rides on the next assistant turn as `reasoning_content`. Items that only
record what OpenAI's servers did (`web_search_call`) carry nothing a local model can
read and are skipped; anything else unknown is a 400 naming it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cortex.dialects.responses.tools import ToolKit, add_tool
from cortex.dialects.shared import bad, expect

_SEAL = "cortex-reasoning-v1:"
_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
_CALLS = ("function_call", "custom_tool_call", "local_shell_call", "tool_search_call")
_OUTPUTS = (
    "function_call_output",
    "custom_tool_call_output",
    "local_shell_call_output",
    "tool_search_output",
)
_SKIPPED = ("web_search_call", "file_search_call", "image_generation_call", "code_interpreter_call")


def seal(text: str) -> str:
    """The opaque `encrypted_content` of a reasoning item: its text, which round-trips."""
    return _SEAL + base64.b64encode(text.encode()).decode()


def unseal(value: Any) -> str | None:
    """The reasoning text of one of our sealed values (another server's is unreadable)."""
    if not isinstance(value, str) or not value.startswith(_SEAL):
        return None
    try:
        return base64.b64decode(value[len(_SEAL) :], validate=True).decode()
    except ValueError:
        return None


def _text(content: Any, where: str) -> str:
    """The text of a string or an array of text parts."""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(expect(content, list, where, "a string or an array of parts")):
        at = f"{where}.{i}"
        kind = expect(part, dict, at, "an object").get("type")
        if kind == "refusal":
            texts.append(expect(part.get("refusal"), str, f"{at}.refusal", "a string"))
        elif kind in _TEXT_PARTS:
            texts.append(expect(part.get("text"), str, f"{at}.text", "a string"))
        elif kind in ("input_image", "input_file", "input_audio"):
            raise bad(f"{at}.type", f"{kind} parts are not supported: this model takes text only")
        else:
            raise bad(f"{at}.type", f"unsupported content part type {kind!r}")
    return "\n".join(texts)


def _call_arguments(item: dict[str, Any], kind: str, where: str) -> tuple[str, str]:
    """(chat function name, arguments JSON) of a tool call item sent back."""
    if kind == "function_call":
        name = expect(item.get("name"), str, f"{where}.name", "a string")
        namespace = item.get("namespace")
        arguments = expect(item.get("arguments", "{}"), str, f"{where}.arguments", "a string")
        return (f"{namespace}__{name}" if namespace else name), arguments
    if kind == "custom_tool_call":
        name = expect(item.get("name"), str, f"{where}.name", "a string")
        text = expect(item.get("input"), str, f"{where}.input", "a string")
        return name, json.dumps({"input": text}, ensure_ascii=False)
    if kind == "local_shell_call":
        action = expect(item.get("action"), dict, f"{where}.action", "an object")
        arguments = {"command": action.get("command") or []}
        if action.get("working_directory"):
            arguments["workdir"] = action["working_directory"]
        return "local_shell", json.dumps(arguments, ensure_ascii=False)
    return "tool_search", json.dumps(item.get("arguments") or {}, ensure_ascii=False)


def _output_text(item: dict[str, Any], kind: str, where: str) -> str:
    if kind == "tool_search_output":
        return json.dumps(item.get("tools") or [], ensure_ascii=False)
    output = item.get("output")
    if isinstance(output, dict):  # a failure as Codex sends it: {content, success}
        output = output.get("content", json.dumps(output))
    return _text(output if output is not None else "", f"{where}.output")


class Conversation:
    """Builds the chat messages of one request, item by item."""

    def __init__(self, kit: ToolKit) -> None:
        self.kit = kit
        self.messages: list[dict[str, Any]] = []
        self._reasoning: list[str] = []
        self._open_calls: set[str] = set()

    def add(self, item: Any, where: str) -> None:
        kind = expect(item, dict, where, "an object").get("type", "message")
        if kind == "message":
            self._message(item, where)
        elif kind in _CALLS:
            self._call(item, kind, where)
        elif kind in _OUTPUTS:
            call_id = expect(item.get("call_id"), str, f"{where}.call_id", "a string")
            if call_id not in self._open_calls:
                raise bad(f"{where}.call_id", f"no tool call with call_id {call_id!r} before it")
            if kind == "tool_search_output":
                for i, tool in enumerate(item.get("tools") or []):
                    add_tool(self.kit, tool, f"{where}.tools.{i}")
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": _output_text(item, kind, where),
                }
            )
        elif kind == "reasoning":
            self._reasoning.append(self._reasoning_text(item, where))
        elif kind not in _SKIPPED:
            raise bad(f"{where}.type", f"unsupported input item type {kind!r}")

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        if role not in _ROLES:
            raise bad(f"{where}.role", f"must be one of {', '.join(_ROLES)}, got {role!r}")
        text = _text(item.get("content"), f"{where}.content")
        if role == "assistant":
            self._assistant()["content"] = (self._assistant().get("content") or "") + text
            return
        chat_role = "system" if role in ("system", "developer") else role
        first = self.messages[0] if self.messages else None
        if (
            chat_role == "system"
            and first is not None
            and len(self.messages) == 1
            and first["role"] == "system"
        ):
            first["content"] += "\n\n" + text  # leading instructions stay one system turn
        else:
            self.messages.append({"role": chat_role, "content": text})

    def _call(self, item: dict[str, Any], kind: str, where: str) -> None:
        call_id = item.get("call_id") or item.get("id")
        call_id = expect(call_id, str, f"{where}.call_id", "a string")
        name, arguments = _call_arguments(item, kind, where)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        self._assistant().setdefault("tool_calls", []).append(call)
        self._open_calls.add(call_id)

    def _assistant(self) -> dict[str, Any]:
        """The assistant turn being written: the last message unless a new one must begin."""
        last = self.messages[-1] if self.messages else None
        if (
            last is None
            or last["role"] != "assistant"
            or (self._reasoning and last.get("tool_calls"))
        ):
            last = {"role": "assistant", "content": None}
            self.messages.append(last)
        if self._reasoning:
            last["reasoning_content"] = "\n".join(self._reasoning)
            self._reasoning = []
        return last

    def _reasoning_text(self, item: dict[str, Any], where: str) -> str:
        sealed = unseal(item.get("encrypted_content"))
        if sealed is not None:
            return sealed
        parts = item.get("content") or item.get("summary") or []
        return _text(parts, f"{where}.summary")


def to_messages(
    instructions: str | None, items: list[Any], kit: ToolKit, first: int = 0
) -> list[dict[str, Any]]:
    """Chat messages for `instructions` and the items (`first`: index of the client's own
    items in `items`, so that errors name them as `input.N`)."""
    conversation = Conversation(kit)
    if instructions:
        conversation.messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        at = f"input.{i - first}" if i >= first else f"previous_response_id (item {i})"
        conversation.add(item, at)
    if not any(m["role"] != "system" for m in conversation.messages):
        raise bad("input", "the conversation has no user turn")
    return conversation.messages
