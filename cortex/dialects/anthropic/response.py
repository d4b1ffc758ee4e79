"""OpenAI chat completion → Anthropic `Message`, and the pieces streaming shares with it."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from cortex.app.translating import chat_choice
from cortex.common.wire import ApiError

_ALPHABET = string.ascii_letters + string.digits
_FINISH_TO_STOP = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def new_id(prefix: str) -> str:
    """A random id in Anthropic's style (`msg_…`, `toolu_…`)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def stop_reason(
    finish_reason: str | None, matched: Any, stops: list[str]
) -> tuple[str, str | None]:
    """Anthropic (stop_reason, stop_sequence) for an OpenAI finish.

    The neuron names the stop string that ended the output in the choice's
    `stop_reason` (as vLLM does); an EOS ends with "stop" and no string.
    """
    if finish_reason == "stop" and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
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


def usage(openai_usage: dict[str, Any] | None) -> dict[str, int]:
    """Anthropic usage from OpenAI's; there is no prompt cache, so its counts are 0."""
    openai_usage = openai_usage or {}
    return {
        "input_tokens": int(openai_usage.get("prompt_tokens") or 0),
        "output_tokens": int(openai_usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def from_openai_response(resp: dict[str, Any], model: str, stops: list[str]) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic `Message`."""
    choice, message = chat_choice(resp)
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": new_id("toolu_"),
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), stops)
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(resp.get("usage")),
    }
