"""OpenAI response shapes: chat and legacy completion objects, chunks, usage, logprobs.

Choices carry `stop_reason` (the matched stop string or stop token id, as vLLM
does) beside `finish_reason`, so a gateway can report Anthropic's `stop_sequence`.
"""

from __future__ import annotations

import time
from typing import Any

from neuron.engine.records import TokenLogprob


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    """OpenAI usage; `cached_tokens` are the prompt tokens the prefix cache served."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def envelope(kind: str, rid: str, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": rid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {**_entry(t.token, t.logprob), "top_logprobs": [_entry(s, lp) for _i, s, lp in t.top]}
            for t in items
        ],
        "refusal": None,
    }


def completion_logprobs(items: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """The legacy shape; text offsets count from `offset` characters into the text."""
    offsets = []
    for t in items:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in items],
        "token_logprobs": [t.logprob for t in items],
        "top_logprobs": [{s: lp for _i, s, lp in t.top} for t in items],
        "text_offset": offsets,
    }


def tool_call(call: Any, index: int | None = None) -> dict[str, Any]:
    out = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return out if index is None else {"index": index, **out}


def chat_choice(
    index: int,
    content: str,
    calls: list[Any],
    finish_reason: str | None,
    stop_reason: str | int | None,
    logprobs: list[TokenLogprob] | None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content or None,
        "reasoning_content": reasoning,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [tool_call(c) for c in calls]
        finish_reason = "tool_calls"
    elif message["content"] is None:
        message["content"] = ""
    return {
        "index": index,
        "message": message,
        "logprobs": chat_logprobs(logprobs) if logprobs is not None else None,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }


def chat_delta(
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    stop_reason: str | int | None = None,
    logprobs: list[TokenLogprob] | None = None,
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": index,
        "delta": delta,
        "logprobs": chat_logprobs(logprobs) if logprobs else None,
        "finish_reason": finish_reason,
    }
    if finish_reason is not None:
        choice["stop_reason"] = stop_reason
    return choice


def completion_choice(
    index: int,
    text: str,
    finish_reason: str | None,
    stop_reason: str | int | None,
    logprobs: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }
