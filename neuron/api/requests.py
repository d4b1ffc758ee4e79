"""OpenAI request bodies → validated, typed requests (every problem a 400 naming the field).

The sampling fields map onto SamplingParams, including the extensions common in
open-model servers (top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids).
Fields a client leaves out fall back to the model's generation defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.common.wire import ApiError
from neuron.api.structured import (
    parse_logit_bias,
    parse_parallel_tool_calls,
    parse_response_format,
)
from neuron.engine.sampling_params import SamplingParams
from neuron.grammar.formats import GrammarSpec
from neuron_kernels.sampling import KNOBS

MAX_N = 16
_MISSING = object()
_NUMBER = (int, float)
_SAMPLING_FLOATS = tuple(name for name, dtype in KNOBS.items() if dtype.is_floating_point)
_ROLES = ("system", "developer", "user", "assistant", "tool")
_EFFORTS = ("minimal", "low", "medium", "high")


@dataclass
class ParsedRequest:
    """What the chat and legacy endpoints share once parsed."""

    model: str
    params: SamplingParams
    max_tokens: int | None  # None: up to the context length
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False  # usage in every chunk (vLLM's continuous_usage_stats)
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    prompt: str | list[int] | None = None
    echo: bool = False
    suffix: str | None = None  # the code after the cursor: a fill-in-the-middle prompt
    truncate: bool = False  # cap max_tokens at the room the context leaves (no 400)
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # chat template switches
    continue_final: bool = False  # the last (assistant) message is continued, not answered
    parallel_tool_calls: bool = True
    grammar: GrammarSpec | None = None  # what the reply must follow (response_format, tools)
    grammar_prefix: str = ""  # reply text the prompt already holds (a forced call's opening)


def _get(body: dict[str, Any], key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ApiError(400, f"`{key}` must be {_kind_name(kinds)}, got a boolean", param=key)
    if not isinstance(value, kinds):
        raise ApiError(
            400, f"`{key}` must be {_kind_name(kinds)}, got {type(value).__name__}", param=key
        )
    return value


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
    }
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _stop(body: dict[str, Any]) -> list[str]:
    stop = _get(body, "stop", (str, list), [])
    stop = [stop] if isinstance(stop, str) else stop
    if not all(isinstance(s, str) and s for s in stop):
        raise ApiError(
            400, "`stop` must be a string or an array of non-empty strings", param="stop"
        )
    return stop


def _params(body: dict[str, Any], defaults: dict[str, Any], logprobs: int | None) -> SamplingParams:
    kwargs: dict[str, Any] = {}
    for key in _SAMPLING_FLOATS:
        kwargs[key] = _get(body, key, _NUMBER, defaults.get(key, getattr(SamplingParams, key)))
    kwargs["top_k"] = _get(body, "top_k", int, defaults.get("top_k", 0))
    if kwargs["top_k"] < 0:  # OpenAI-style servers use -1 for "off"
        kwargs["top_k"] = 0
    seed = _get(body, "seed", int, None)
    stop_ids = _get(body, "stop_token_ids", list, [])
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in stop_ids):
        raise ApiError(400, "`stop_token_ids` must be an array of integers", param="stop_token_ids")
    return SamplingParams(
        seed=seed,
        stop=_stop(body),
        stop_token_ids=stop_ids,
        ignore_eos=_get(body, "ignore_eos", bool, False),
        logprobs=logprobs,
        logit_bias=parse_logit_bias(body),
        **kwargs,
    )


def _common(body: dict[str, Any], defaults: dict[str, Any], logprobs: int | None) -> ParsedRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` must be a non-empty string", param="model")
    grammar = parse_response_format(body)
    max_tokens = _get(body, "max_completion_tokens", int, None)
    key = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, key = _get(body, "max_tokens", int, None), "max_tokens"
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, f"`{key}` must be at least 1, got {max_tokens}", param=key)
    n = _get(body, "n", int, 1)
    if not 1 <= n <= MAX_N:
        raise ApiError(400, f"`n` must be between 1 and {MAX_N}, got {n}", param="n")
    stream = _get(body, "stream", bool, False)
    options = _get(body, "stream_options", dict, {})
    if options and not stream:
        raise ApiError(
            400, "`stream_options` is only allowed with `stream: true`", param="stream_options"
        )
    params = _params(body, defaults, logprobs)
    params.max_tokens = max_tokens or 1
    try:
        params.validate(1 << 30)
    except ValueError as exc:
        word = str(exc).split()[0]
        raise ApiError(400, str(exc), param=word if word in body else None) from None
    return ParsedRequest(
        model=model,
        params=params,
        max_tokens=max_tokens,
        n=n,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        continuous_usage=bool(options.get("continuous_usage_stats", False)),
        truncate=_get(body, "truncate_max_tokens", bool, False),
        grammar=grammar,
    )


def _message(index: int, message: Any) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise ApiError(400, f"`{where}` must be an object", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise ApiError(
            400,
            f"`{where}.role` must be one of {', '.join(_ROLES)}, got {role!r}",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is None and not (role == "assistant" and message.get("tool_calls")):
        raise ApiError(400, f"`{where}.content` is required", param=f"{where}.content")
    if content is not None and not isinstance(content, (str, list)):
        raise ApiError(
            400,
            f"`{where}.content` must be a string or an array of parts",
            param=f"{where}.content",
        )
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"`{where}.content` has a {kind!r} part; this text model accepts only text parts",
                param=f"{where}.content",
            )
    out = dict(message)
    if role == "developer":
        out["role"] = "system"
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, Any]:
    tools = _get(body, "tools", list, None)
    choice = body.get("tool_choice", "auto" if tools else "none")
    for i, tool in enumerate(tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ApiError(
                400,
                f"`tools[{i}]` must be {{type: function, function: {{name, ...}}}}",
                param=f"tools[{i}]",
            )
    names = {t["function"]["name"] for t in tools or []}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise ApiError(
                400, f"`tool_choice` names {name!r}, which is not in `tools`", param="tool_choice"
            )
    elif choice not in ("auto", "none", "required"):
        raise ApiError(
            400, "`tool_choice` must be auto, none, required or a function", param="tool_choice"
        )
    elif choice == "required" and not tools:
        raise ApiError(
            400, "`tool_choice` is required but no `tools` were given", param="tool_choice"
        )
    return (tools if choice != "none" else None), choice


def parse_chat(body: dict[str, Any], defaults: dict[str, Any]) -> ParsedRequest:
    logprobs = None
    if _get(body, "logprobs", bool, False):
        logprobs = _get(body, "top_logprobs", int, 0)
    request = _common(body, defaults, logprobs)
    messages = _get(body, "messages", list, None)
    if not messages:
        raise ApiError(400, "`messages` must be a non-empty array", param="messages")
    request.messages = [_message(i, m) for i, m in enumerate(messages)]
    request.tools, request.tool_choice = _tools(body)
    _reasoning(body, request)
    request.continue_final = _get(body, "continue_final_message", bool, False)
    if request.continue_final and request.messages[-1]["role"] != "assistant":
        raise ApiError(
            400,
            "`continue_final_message` needs an assistant message last",
            param="continue_final_message",
        )
    request.parallel_tool_calls = parse_parallel_tool_calls(body)
    return request


def _reasoning(body: dict[str, Any], request: ParsedRequest) -> None:
    """Template switches (`enable_thinking`…), the effort, and the reasoning budget."""
    kwargs = dict(_get(body, "chat_template_kwargs", dict, {}))
    effort = _get(body, "reasoning_effort", str, None)
    if effort is not None:
        if effort not in _EFFORTS:
            raise ApiError(
                400,
                f"`reasoning_effort` must be one of {', '.join(_EFFORTS)}, got {effort!r}",
                param="reasoning_effort",
            )
        kwargs.setdefault("reasoning_effort", effort)
    request.template_kwargs = kwargs
    budget = _get(body, "thinking_budget", int, None)
    if budget is not None and budget < 1:
        raise ApiError(
            400, f"`thinking_budget` must be at least 1, got {budget}", param="thinking_budget"
        )
    request.params.thinking_budget = budget


def parse_completion(body: dict[str, Any], defaults: dict[str, Any]) -> ParsedRequest:
    logprobs = _get(body, "logprobs", int, None)
    request = _common(body, defaults, logprobs)
    if request.max_tokens is None:
        request.max_tokens = request.params.max_tokens = 16  # the legacy API's default
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    tokens = isinstance(prompt, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in prompt
    )
    if not (isinstance(prompt, str) or tokens) or not prompt:
        raise ApiError(
            400,
            "`prompt` must be a non-empty string or array of token ids (one prompt per request)",
            param="prompt",
        )
    request.prompt = prompt
    request.echo = _get(body, "echo", bool, False)
    request.suffix = _get(body, "suffix", str, None)
    return request
