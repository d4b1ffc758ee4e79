"""Anthropic `thinking` and `output_config` → the neuron's reasoning and format fields.

Thinking maps onto the chat template's `enable_thinking` switch (Qwen3 and other
thinking templates read it; templates that cannot think ignore it, so such a model
simply answers without a thinking block, as adaptive thinking allows) and, for
`enabled`, onto the neuron's `thinking_budget`. Without `thinking`, thinking is off,
as it is on Anthropic's API. `output_config.effort` becomes `reasoning_effort`, and
`output_config.format` OpenAI's `response_format` (the neuron decides whether it can
honour it).
"""

from __future__ import annotations

from typing import Any

from cortex.dialects.shared import bad, expect

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_THINKING = ("enabled", "adaptive", "disabled", "between_tools")


def thinking_display(body: dict[str, Any]) -> bool:
    """Whether thinking text is shown (`display: "omitted"` keeps only the signature)."""
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("display") == "omitted")


def _thinking(body: dict[str, Any], max_tokens: int | None, out: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    enable = False
    if thinking is not None:
        kind = expect(thinking, dict, "thinking", "an object").get("type")
        if kind not in _THINKING:
            raise bad(
                "thinking.type", f"must be one of {', '.join(map(repr, _THINKING))}, got {kind!r}"
            )
        if thinking.get("display") not in (None, "summarized", "omitted"):
            raise bad("thinking.display", "must be 'summarized' or 'omitted'")
        enable = kind in ("enabled", "adaptive")
        if kind == "enabled":
            budget = expect(
                thinking.get("budget_tokens"), int, "thinking.budget_tokens", "an integer"
            )
            if budget < 1:
                raise bad("thinking.budget_tokens", "must be at least 1")
            if max_tokens is not None and budget >= max_tokens:
                raise bad(
                    "thinking.budget_tokens",
                    f"must be less than max_tokens ({budget} >= {max_tokens})",
                )
            out["thinking_budget"] = budget
    out["chat_template_kwargs"] = {"enable_thinking": enable}


def _output_config(body: dict[str, Any], out: dict[str, Any]) -> None:
    config = expect(body.get("output_config") or {}, dict, "output_config", "an object")
    for key in config:
        if key not in ("effort", "format"):
            raise bad(f"output_config.{key}", "unsupported field")
    effort = config.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise bad(
                "output_config.effort", f"must be one of {', '.join(_EFFORTS)}, got {effort!r}"
            )
        out["reasoning_effort"] = _EFFORTS[effort]
    fmt = config.get("format")
    if fmt is not None:
        kind = expect(fmt, dict, "output_config.format", "an object").get("type")
        if kind != "json_schema":
            raise bad("output_config.format.type", f"must be 'json_schema', got {kind!r}")
        schema = expect(
            fmt.get("schema"), dict, "output_config.format.schema", "a JSON schema object"
        )
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }


def reasoning_fields(body: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    """The neuron fields for the request's thinking and output settings."""
    out: dict[str, Any] = {}
    _thinking(body, max_tokens, out)
    _output_config(body, out)
    return out
