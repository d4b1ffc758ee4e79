"""`context_management` edits, applied to the history before it is templated.

`clear_thinking_20251015` drops thinking blocks from all but the last `keep` assistant
turns that have them; `clear_tool_uses_20250919` replaces the results (and, with
`clear_tool_inputs`, the inputs) of all but the last `keep` tool uses once the prompt
passes its `trigger`. Both mean the same for a local model as for Anthropic's: a
shorter prompt. The response reports each edit that cleared something, with the
tokens it saved, in the API's `context_management.applied_edits` shape; token counts
come from the neuron (`count`), asked only when an edit needs one.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from cortex.dialects.shared import bad, expect

CLEAR_THINKING = "clear_thinking_20251015"
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEARED = "[cleared to save context]"
Count = Callable[[dict[str, Any]], Awaitable[int]]


def _amount(edit: dict[str, Any], key: str, kinds: tuple[str, ...], default: tuple[str, int]):
    """An edit's `{type, value}` setting (e.g. keep, trigger) as (type, value)."""
    at = f"context_management.edits.{key}"
    value = edit.get(key)
    if value is None:
        return default
    value = expect(value, dict, at, "an object")
    kind = value.get("type")
    if kind not in kinds:
        raise bad(f"{at}.type", f"must be one of {', '.join(map(repr, kinds))}, got {kind!r}")
    number = expect(value.get("value"), int, f"{at}.value", "an integer")
    if number < 0:
        raise bad(f"{at}.value", "must be at least 0")
    return kind, number


def edits_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The validated edits of a request (none when it has no `context_management`)."""
    config = body.get("context_management")
    if config is None:
        return []
    config = expect(config, dict, "context_management", "an object")
    edits = expect(config.get("edits") or [], list, "context_management.edits", "an array")
    for i, edit in enumerate(edits):
        kind = expect(edit, dict, f"context_management.edits.{i}", "an object").get("type")
        if kind not in (CLEAR_THINKING, CLEAR_TOOL_USES):
            raise bad(f"context_management.edits.{i}.type", f"unsupported edit {kind!r}")
        if kind == CLEAR_THINKING and edit.get("keep") not in (None, "all"):
            _amount(edit, "keep", ("thinking_turns",), ("thinking_turns", 1))
        if kind == CLEAR_TOOL_USES:
            _amount(edit, "trigger", ("input_tokens", "tool_uses"), ("input_tokens", 100_000))
            _amount(edit, "keep", ("tool_uses",), ("tool_uses", 3))
    return edits


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _clear_thinking(messages: list[dict[str, Any]], edit: dict[str, Any]) -> int:
    if edit.get("keep") == "all":
        return 0
    keep = _amount(edit, "keep", ("thinking_turns",), ("thinking_turns", 1))[1]
    turns = [
        m
        for m in messages
        if m.get("role") == "assistant"
        and any(b.get("type") in ("thinking", "redacted_thinking") for b in _blocks(m))
    ]
    cleared = turns[: max(0, len(turns) - keep)]
    for message in cleared:
        message["content"] = [
            b for b in _blocks(message) if b.get("type") not in ("thinking", "redacted_thinking")
        ] or ""
    return len(cleared)


def _clear_tool_uses(messages: list[dict[str, Any]], edit: dict[str, Any]) -> int:
    keep = _amount(edit, "keep", ("tool_uses",), ("tool_uses", 3))[1]
    excluded = set(edit.get("exclude_tools") or [])
    uses = [
        b
        for m in messages
        if m.get("role") == "assistant"
        for b in _blocks(m)
        if b.get("type") == "tool_use" and b.get("name") not in excluded
    ]
    cleared = uses[: max(0, len(uses) - keep)]
    ids = {b.get("id") for b in cleared}
    for block in cleared if edit.get("clear_tool_inputs") else []:
        block["input"] = {}
    for message in messages:
        for block in _blocks(message):
            if block.get("type") == "tool_result" and block.get("tool_use_id") in ids:
                block["content"] = CLEARED
    return len(cleared)


def _tool_use_count(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages for b in _blocks(m) if b.get("type") == "tool_use")


async def apply_edits(body: dict[str, Any], count: Count) -> tuple[dict[str, Any], list[dict]]:
    """The body with its edits applied (the client's own is left as it was), and the
    edits that cleared something, as the response reports them."""
    edits = edits_of(body)
    current = body
    applied: list[dict[str, Any]] = []
    tokens: int | None = None  # the current prompt's size, once the neuron has counted it
    for edit in edits:
        edited = copy.deepcopy(expect(current.get("messages"), list, "messages", "an array"))
        if edit["type"] == CLEAR_THINKING:
            unit, cleared = "cleared_thinking_turns", _clear_thinking(edited, edit)
        else:
            unit, cleared = "cleared_tool_uses", 0
            kind, threshold = _amount(
                edit, "trigger", ("input_tokens", "tool_uses"), ("input_tokens", 100_000)
            )
            if kind == "input_tokens":
                tokens = await count(current) if tokens is None else tokens
            size = tokens if kind == "input_tokens" else _tool_use_count(edited)
            if size is not None and size >= threshold:
                cleared = _clear_tool_uses(edited, edit)
        if not cleared:
            continue
        before = await count(current) if tokens is None else tokens
        current = {**current, "messages": edited}
        tokens = await count(current)
        applied.append(
            {"type": edit["type"], unit: cleared, "cleared_input_tokens": before - tokens}
        )
    return current, applied
