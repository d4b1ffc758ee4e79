"""Anthropic conversation (system prompt, turns, content blocks) → OpenAI chat messages.

Every block is either translated or rejected with a 400 naming it (`messages.2.content.1`):
a block the neuron cannot take is never dropped, so the model never answers a
conversation other than the one the client sent. Two things are left out on purpose:
Claude Code's billing-header system block (different on every request: noise to the
model, and it would defeat a prefix cache) and `redacted_thinking` blocks (encrypted
by Anthropic for its own models). Thinking blocks sent back become the assistant
message's `reasoning_content`, which thinking templates render or drop as they do.
"""

from __future__ import annotations

import json
from typing import Any

from cortex.common.wire import ApiError
from cortex.dialects.shared import bad, expect


def _text_of(block: dict[str, Any], where: str) -> str:
    return expect(block.get("text"), str, f"{where}.text", "a string")


def _unsupported(kind: str, where: str) -> ApiError:
    if kind in ("image", "document"):
        return bad(where, f"{kind} blocks are not supported: this model takes text only")
    return bad(where, f"unsupported content block type {kind!r}")


BILLING_HEADER = "x-anthropic-billing-header:"


def _text_blocks(content: Any, where: str) -> list[str]:
    """Texts of a string or an array of text blocks (system prompts, tool results)."""
    if isinstance(content, str):
        return [content]
    texts = []
    for i, block in enumerate(expect(content, list, where, "a string or an array of blocks")):
        at = f"{where}.{i}"
        kind = expect(block, dict, at, "an object").get("type")
        if kind != "text":
            raise _unsupported(str(kind), at)
        texts.append(_text_of(block, at))
    return texts


_Blocks = list[tuple[str, dict[str, Any]]]


def _blocks(message: dict[str, Any], where: str) -> _Blocks:
    """(path, block) pairs: a path names the block in the request as the client wrote it."""
    content = message.get("content")
    if isinstance(content, str):
        return [(f"{where}.content", {"type": "text", "text": content})]
    blocks = expect(content, list, f"{where}.content", "a string or an array of blocks")
    if not blocks:
        raise bad(f"{where}.content", "at least one content block is required")
    pairs = [(f"{where}.content.{i}", block) for i, block in enumerate(blocks)]
    return [(at, expect(block, dict, at, "an object")) for at, block in pairs]


def _user_messages(blocks: _Blocks, where: str, open_calls: set[str]) -> list[dict[str, Any]]:
    """One user turn → `tool` messages (results first, as OpenAI requires) then a user message."""
    results, parts = [], []
    for at, block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "tool_result":
            call_id = expect(block.get("tool_use_id"), str, f"{at}.tool_use_id", "a string")
            if call_id not in open_calls:
                raise bad(
                    at,
                    f"tool_result for {call_id!r} does not answer a tool_use of the previous assistant turn",
                )
            open_calls.discard(call_id)
            text = "\n".join(_text_blocks(block.get("content", ""), f"{at}.content"))
            if expect(block.get("is_error", False), bool, f"{at}.is_error", "a boolean"):
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            raise _unsupported(str(kind), at)
    if open_calls:
        raise bad(
            where, f"tool_use ids without a tool_result in the next user turn: {sorted(open_calls)}"
        )
    if not parts:
        return results
    content: Any = parts[0]["text"] if len(parts) == 1 else parts
    return [*results, {"role": "user", "content": content}]


def _assistant_message(blocks: _Blocks, open_calls: set[str]) -> dict[str, Any]:
    texts, calls, thoughts = [], [], []
    for at, block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "thinking":
            thoughts.append(expect(block.get("thinking"), str, f"{at}.thinking", "a string"))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            call_id = expect(block.get("id"), str, f"{at}.id", "a string")
            name = expect(block.get("name"), str, f"{at}.name", "a string")
            args = expect(block.get("input"), dict, f"{at}.input", "an object")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
                }
            )
            open_calls.add(call_id)
        else:
            raise _unsupported(str(kind), at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thoughts:
        message["reasoning_content"] = "\n".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def _turns(messages: Any) -> list[tuple[str, _Blocks, str]]:
    """Validated (role, blocks, where) turns, consecutive same-role turns merged as Anthropic
    does; `system` turns (Claude Code's mid-conversation instructions) stand on their own."""
    turns: list[tuple[str, _Blocks, str]] = []
    for i, message in enumerate(expect(messages, list, "messages", "an array of messages")):
        where = f"messages.{i}"
        role = expect(message, dict, where, "an object").get("role")
        if role not in ("user", "assistant", "system"):
            raise bad(f"{where}.role", f"must be 'user', 'assistant' or 'system', got {role!r}")
        blocks = _blocks(message, where)
        if turns and turns[-1][0] == role != "system":
            turns[-1] = (role, turns[-1][1] + blocks, turns[-1][2])
        else:
            turns.append((role, blocks, where))
    if not turns:
        raise bad("messages", "at least one message is required")
    if turns[0][0] != "user":
        raise bad("messages", "the first message must use the 'user' role")
    return turns


def _system_text(content: Any, where: str) -> str:
    texts = [t for t in _text_blocks(content, where) if not t.startswith(BILLING_HEADER)]
    return "\n".join(texts)


def system_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """The system prompt as an OpenAI system message (none when it is empty)."""
    if content in (None, "", []):
        return []
    system = _system_text(content, where)
    return [{"role": "system", "content": system}] if system else []


def is_prefill(body: dict[str, Any]) -> bool:
    """Whether the conversation ends with the assistant's own start of its answer."""
    messages = body.get("messages")
    return (
        bool(messages)
        and isinstance(messages[-1], dict)
        and messages[-1].get("role") == "assistant"
    )


def to_openai_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation (system prompt included) as OpenAI chat messages; a last assistant
    message (prefill) stays last, for the neuron to continue."""
    out = system_messages(body.get("system"), "system")
    open_calls: set[str] = set()
    for role, blocks, where in _turns(body.get("messages")):
        if role == "user":
            out.extend(_user_messages(blocks, where, open_calls))
        elif role == "system":
            out.append(
                {
                    "role": "system",
                    "content": _system_text([b for _, b in blocks], f"{where}.content"),
                }
            )
        else:
            out.append(_assistant_message(blocks, open_calls))
    return out
