"""OpenAI chat completion → Anthropic `Message`, and the pieces streaming shares with it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cortex.app.translating import chat_choice
from cortex.common.wire import ApiError
from cortex.dialects.shared import anthropic_id

_FINISH_TO_STOP = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def signature(thinking: str) -> str:
    """The opaque signature of a thinking block (a digest of its text): clients keep it and
    send it back with the block, as they do with Anthropic's."""
    return "cortex1:" + hashlib.sha256(thinking.encode("utf-8")).hexdigest()


def thinking_block(thinking: str, shown: bool) -> dict[str, Any]:
    return {
        "type": "thinking",
        "thinking": thinking if shown else "",
        "signature": signature(thinking),
    }


def stop_reason(
    finish_reason: str | None, matched: Any, stops: list[str]
) -> tuple[str, str | None]:
    """Anthropic (stop_reason, stop_sequence) for an OpenAI finish.

    The neuron names the stop string that ended the output in the choice's
    `stop_reason` (as vLLM does); an EOS ends with "stop" and no string; the end of the
    context (max_tokens capped there) is "length" with `stop_reason: "context_window"`.
    """
    if finish_reason == "stop" and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    if finish_reason == "length" and matched == "context_window":
        return "model_context_window_exceeded", None
    return _FINISH_TO_STOP.get(finish_reason or "stop", "end_turn"), None


def tool_input(arguments: Any) -> dict[str, Any]:
    """Parsed tool-call arguments; anything but a JSON object is an upstream fault."""
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ApiError(
            502,
            f"upstream returned tool call arguments that are not a JSON object: {arguments!r:.200}",
        )
    return value


def usage(openai_usage: dict[str, Any] | None, breakpoint: int | None = None) -> dict[str, int]:
    """Anthropic usage from OpenAI's, as Anthropic counts it: `cached_tokens` (what the
    neuron's prefix cache served) are cache reads; without a breakpoint the rest is
    input. With one (`breakpoint`: the prompt's tokens up to the last `cache_control`),
    the part of it not read is cache creation, and only what follows it is input. The
    three always add up to the whole prompt."""
    openai_usage = openai_usage or {}
    prompt = int(openai_usage.get("prompt_tokens") or 0)
    details = openai_usage.get("prompt_tokens_details") or {}
    cached = min(prompt, int(details.get("cached_tokens") or 0))
    written = 0 if breakpoint is None else max(0, min(breakpoint, prompt) - cached)
    return {
        "input_tokens": prompt - cached - written,
        "output_tokens": int(openai_usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def from_openai_response(
    resp: dict[str, Any],
    model: str,
    stops: list[str],
    show_thinking: bool = True,
    breakpoint: int | None = None,
) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic `Message` (`breakpoint`: see `usage`)."""
    choice, message = chat_choice(resp)
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        content.append(thinking_block(message["reasoning_content"], show_thinking))
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": anthropic_id("toolu_"),
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), stops)
    return {
        "id": anthropic_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(resp.get("usage"), breakpoint),
    }
