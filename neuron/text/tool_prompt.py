"""Tool use for chat templates that know nothing of tools (SmolLM2's, Llama 2's...).

Such a template only prints role and content, so the conversation itself is rewritten
into the Hermes format that Qwen and Hermes models are trained on and that
`neuron.text.tool_calls` parses back:

- the tool JSON schemas and the answer format go into the system message;
- an assistant message carrying `tool_calls` becomes `<tool_call>{json}</tool_call>` text;
- `tool` results become a user turn of `<tool_response>…</tool_response>` blocks.
"""

from __future__ import annotations

import json
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

TOOL_PROMPT_HEADER = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOL_PROMPT_FOOTER = (
    "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI wraps each schema as {"type": "function", "function": {...}}."""
    inner = tool.get("function")
    return inner if isinstance(inner, dict) else tool


def _chosen_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        name = _function(tool_choice).get("name")
        return name if isinstance(name, str) else None
    return None


def select_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> list[dict[str, Any]]:
    """The tools the model may use: none for "none", the named one for a forced choice."""
    if not tools or tool_choice == "none":
        return []
    chosen = _chosen_name(tool_choice)
    return [t for t in tools if chosen is None or _function(t).get("name") == chosen]


def tool_prompt(tools: list[dict[str, Any]], tool_choice: Any = None) -> str:
    """The system-prompt text that offers `tools` and asks for <tool_call> answers."""
    chosen = _chosen_name(tool_choice)
    listing = "\n".join(
        json.dumps({"type": "function", "function": _function(t)}, ensure_ascii=False)
        for t in select_tools(tools, tool_choice)
    )
    text = TOOL_PROMPT_HEADER + listing + TOOL_PROMPT_FOOTER
    if chosen is not None:
        text += f"\n\nYou must call the function {chosen}."
    elif tool_choice == "required":
        text += "\n\nYou must call at least one function."
    return text


def forced_call_prefix(
    tools: list[dict[str, Any]] | None, tool_choice: Any, hermes: bool = True
) -> str:
    """The text a reply is made to begin with when `tool_choice` demands a call.

    Without constrained decoding, an instruction alone does not hold a small model
    to "required" or a named function; starting the assistant turn with the opening
    of a call does (the parser reads the prefix and the model's continuation as one
    text). `hermes` picks `<tool_call>` tags, otherwise Llama 3's bare JSON object.
    """
    offered = select_tools(tools, tool_choice)
    if not offered or tool_choice in (None, "auto", "none"):
        return ""
    opening = f"{TOOL_CALL_OPEN}\n" if hermes else ""
    # "required" with a single tool is that tool: the model then only writes arguments.
    chosen = _function(offered[0]).get("name") if len(offered) == 1 else None
    if not isinstance(chosen, str):
        return opening + '{"name": "'
    return opening + '{"name": ' + json.dumps(chosen, ensure_ascii=False) + ', "arguments": '


def _arguments_object(arguments: Any) -> Any:
    """OpenAI sends arguments as a JSON string; templates and prompts want the object."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def tool_arguments_as_objects(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of `messages` where every tool call's arguments are decoded JSON."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            decoded = []
            for call in calls:
                if isinstance(call, dict):
                    fn = dict(_function(call))
                    fn["arguments"] = _arguments_object(fn.get("arguments", {}))
                    call = {**call, "function": fn}
                decoded.append(call)
            message = {**message, "tool_calls": decoded}
        out.append(message)
    return out


def _call_text(call: dict[str, Any]) -> str:
    fn = _function(call)
    body = {"name": fn.get("name"), "arguments": fn.get("arguments", {})}
    return f"{TOOL_CALL_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{TOOL_CALL_CLOSE}"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def plain_tool_conversation(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, tool_choice: Any = None
) -> list[dict[str, Any]]:
    """Rewrite a tool conversation into plain role/content messages (Hermes format)."""
    out: list[dict[str, Any]] = []
    previous_role = None
    for message in messages:
        role = message.get("role")
        if role == "tool":
            block = f"<tool_response>\n{_content_text(message.get('content'))}\n</tool_response>"
            if previous_role == "tool":  # results of one round share one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
        elif role == "assistant" and message.get("tool_calls"):
            parts = [_content_text(message.get("content"))] if message.get("content") else []
            parts += [_call_text(c) for c in message["tool_calls"] if isinstance(c, dict)]
            out.append({"role": "assistant", "content": "\n".join(parts)})
        else:
            out.append(message)
        previous_role = role
    if select_tools(tools, tool_choice):
        prompt = tool_prompt(tools, tool_choice)
        if out and out[0].get("role") == "system":
            system = _content_text(out[0].get("content"))
            out[0] = {**out[0], "content": f"{system}\n\n{prompt}" if system else prompt}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out
