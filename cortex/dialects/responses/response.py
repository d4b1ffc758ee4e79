"""The Response object, and the output items of a whole (non-streamed) chat completion."""

from __future__ import annotations

import time
from typing import Any

from cortex.app.translating import chat_choice
from cortex.dialects.responses.items import seal
from cortex.dialects.responses.request import Translated
from cortex.dialects.responses.tools import call_item
from cortex.dialects.shared import responses_id

SERVER_ONLY_KEY = "cortex_server_only_tools"  # metadata key naming the tools left out


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    chat_usage = chat_usage or {}
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": prompt + completion,
    }


def reasoning_item(text: str, sealed: bool, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": item_id or responses_id("rs_"),
        "summary": [{"type": "summary_text", "text": text}],
    }
    if sealed:
        item["encrypted_content"] = seal(text)
    return item


def message_item(
    text: str, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or responses_id("msg_"),
        "status": status,
        "role": "assistant",
        "content": [] if status == "in_progress" else [text_part(text)],
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(
    request: Translated,
    model: str,
    response_id: str,
    created_at: int | None = None,
    status: str = "in_progress",
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Response in the API's shape (without usage until there is some)."""
    echo = request.echo
    metadata = dict(echo.get("metadata") or {})
    if request.kit.server_only:
        metadata[SERVER_ONLY_KEY] = ",".join(request.kit.server_only)
    reasoning = echo.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output or [],
        "parallel_tool_calls": echo.get("parallel_tool_calls", True) is not False,
        "previous_response_id": echo.get("previous_response_id"),
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": echo.get("service_tier") or "default",
        "store": request.store,
        "temperature": echo.get("temperature") if echo.get("temperature") is not None else 1.0,
        "text": {"format": {"type": "text"}, **(echo.get("text") or {})},
        "tool_choice": echo.get("tool_choice") or "auto",
        "tools": echo.get("tools") or [],
        "top_logprobs": 0,
        "top_p": echo.get("top_p") if echo.get("top_p") is not None else 1.0,
        "truncation": echo.get("truncation") or "disabled",
        "usage": None,
        "user": echo.get("user"),
        "metadata": metadata,
    }


def finish(response: dict[str, Any], finish_reason: str | None, chat_usage: Any) -> dict[str, Any]:
    """Stamp the final status, reason and usage onto a response; returns it."""
    response["status"], response["incomplete_details"] = status_of(finish_reason)
    response["usage"] = usage(chat_usage)
    return response


def from_chat_completion(
    data: dict[str, Any], request: Translated, model: str, response_id: str
) -> dict[str, Any]:
    """A whole chat completion as a finished Response."""
    choice, message = chat_choice(data)
    output: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(message["reasoning_content"], request.encrypted_reasoning))
    if message.get("content"):
        status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
        output.append(message_item(message["content"], status=status))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        target = request.kit.callable(function.get("name") or "")
        call_id = call.get("id") or responses_id("call_")
        output.append(call_item(target, call_id, function.get("arguments") or "{}"))
    response = response_object(request, model, response_id, status="completed", output=output)
    return finish(response, choice.get("finish_reason"), data.get("usage"))
