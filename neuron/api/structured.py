"""The request fields that constrain the reply: response_format, logit_bias, parallel calls.

They are parsed here into plain values (a `GrammarSpec`, a bias table); the grammar
is compiled per model by `neuron.grammar.compiler` just before the sequences start.
"""

from __future__ import annotations

from typing import Any

from cortex.common.wire import ApiError
from neuron.grammar.compiler import GrammarError, ModelGrammars
from neuron.grammar.formats import FormatError, GrammarSpec, response_format_spec


def parse_response_format(body: dict[str, Any]) -> GrammarSpec | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    try:
        return response_format_spec(fmt)
    except FormatError as exc:
        raise ApiError(400, str(exc), param=exc.param) from None


def parse_logit_bias(body: dict[str, Any]) -> dict[int, float]:
    """OpenAI sends {"token id": bias}; the values' range is checked with the other params."""
    bias = body.get("logit_bias")
    if bias is None:
        return {}
    if not isinstance(bias, dict):
        raise ApiError(400, "`logit_bias` must be an object of token id → bias", param="logit_bias")
    out: dict[int, float] = {}
    for key, value in bias.items():
        token = str(key).strip()
        if not token.lstrip("-").isdigit():
            raise ApiError(
                400, f"`logit_bias` keys must be token ids, got {key!r}", param="logit_bias"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(
                400, f"`logit_bias` values must be numbers, got {value!r}", param="logit_bias"
            )
        out[int(token)] = float(value)
    return out


def parse_parallel_tool_calls(body: dict[str, Any]) -> bool:
    value = body.get("parallel_tool_calls")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise ApiError(400, "`parallel_tool_calls` must be a boolean", param="parallel_tool_calls")
    return value


async def compile_grammar(grammars: ModelGrammars, spec: GrammarSpec) -> Any:
    """The compiled grammar, or a 400 that names what the library could not compile."""
    try:
        return await grammars.compile(spec)
    except GrammarError as exc:
        what = "tool schemas" if spec.kind == "structural_tag" else "response_format schema"
        param = "tools" if spec.kind == "structural_tag" else "response_format"
        message = f"the {what} cannot be used for constrained decoding: {exc}"
        raise ApiError(400, message, param=param) from None
