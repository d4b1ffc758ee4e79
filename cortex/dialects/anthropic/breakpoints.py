"""Where a request's last `cache_control` breakpoint falls, for Anthropic's usage split.

Anthropic reports the prompt up to the last breakpoint as cache creation (what was
not read from the cache) and only what follows it as `input_tokens`; without a
breakpoint creation is 0. The neuron's prefix cache is automatic, so the breakpoint
only decides how the uncached part is named. Its position in tokens is the neuron's
to say: the gateway sends the conversation cut at the breakpoint (in the neuron's
OpenAI shape) with the `/tokenize` body, and the neuron counts the leading tokens
that cut renders in common with the whole prompt. Anthropic's prefix order is tools,
then system, then messages; a top-level `cache_control` puts the breakpoint on the
last block.
"""

from __future__ import annotations

from typing import Any

from cortex.dialects.anthropic.messages import system_messages, to_openai_messages
from cortex.dialects.anthropic.tools import to_openai_tools

# (where, index, block): "tools" (a tool), "system" (a system block), "messages" (a
# message and the block in its content).
Breakpoint = tuple[str, int, int]


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and block.get("cache_control") is not None


def _content(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, list) else []


def last_breakpoint(body: dict[str, Any]) -> Breakpoint | None:
    """The last block marked with `cache_control` (the request was validated before)."""
    messages = body.get("messages") or []
    if body.get("cache_control") is not None and messages:
        return "messages", len(messages) - 1, max(0, len(_content(messages[-1])) - 1)
    for i in range(len(messages) - 1, -1, -1):
        blocks = _content(messages[i])
        for j in range(len(blocks) - 1, -1, -1):
            if _marked(blocks[j]):
                return "messages", i, j
    system = body.get("system")
    for where, items in (("system", system if isinstance(system, list) else []),
                         ("tools", body.get("tools") or [])):  # fmt: skip
        for i in range(len(items) - 1, -1, -1):
            if _marked(items[i]):
                return where, i, 0
    return None


def _cut_message(message: dict[str, Any], block: int) -> dict[str, Any]:
    """A message up to its `block`; tool results after it stay (each answers a call, and
    they render ahead of the turn's text anyway)."""
    blocks = _content(message)
    if not blocks:
        return message
    kept = blocks[: block + 1] + [b for b in blocks[block + 1 :] if b.get("type") == "tool_result"]
    return {**message, "content": kept}


def prefix_conversation(body: dict[str, Any]) -> dict[str, Any] | None:
    """The conversation up to the last breakpoint as the neuron's `{messages, tools}`, or
    None when the request sets no breakpoint (nothing to count, nothing to pay)."""
    found = last_breakpoint(body)
    if found is None:
        return None
    where, index, block = found
    tools = body.get("tools") or []
    if where == "tools":
        tools, messages = tools[: index + 1], []
    elif where == "system":
        messages = system_messages(body["system"][: index + 1], "system")
    else:
        cut = [*body["messages"][:index], _cut_message(body["messages"][index], block)]
        messages = to_openai_messages({"system": body.get("system"), "messages": cut})
    out: dict[str, Any] = {"messages": messages}
    if tools:
        out["tools"] = to_openai_tools({"tools": tools})
    return out
