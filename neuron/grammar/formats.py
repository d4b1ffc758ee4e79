"""What the reply must look like, as an xgrammar spec built from request fields.

JSON modes compile as a JSON schema (compact: fixed `, ` / `: ` separators, so a small
model cannot wander off into whitespace). Tool calls compile as a structural tag in the
model's own call format: Hermes `<tool_call>{"name": …, "arguments": …}</tool_call>`
blocks (the format `neuron.text.tool_prompt` teaches and `neuron.text.tool_calls`
parses), or Llama 3's bare `{"name": …, "parameters": …}` object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from neuron.text.tool_prompt import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, select_tools

# Consecutive whitespace allowed inside a call's JSON: room for indentation, none for loops.
MAX_WHITESPACE = 4


@dataclass(frozen=True)
class GrammarSpec:
    """One grammar: its kind and its canonical JSON source (together, the cache key)."""

    kind: Literal["json_schema", "json_object", "structural_tag"]
    source: str = ""


class FormatError(ValueError):
    """A response_format or tool definition that cannot become a grammar."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # key order matters


def response_format_spec(fmt: Any) -> GrammarSpec | None:
    """OpenAI `response_format` → the document's grammar (None for plain text)."""
    if not isinstance(fmt, dict):
        raise FormatError("`response_format` must be an object", "response_format")
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return GrammarSpec("json_object")
    if kind != "json_schema":
        raise FormatError(
            f"`response_format.type` must be text, json_object or json_schema, got {kind!r}",
            "response_format.type",
        )
    spec = fmt.get("json_schema")
    schema = spec.get("schema", {"type": "object"}) if isinstance(spec, dict) else None
    if not isinstance(schema, (dict, bool)):
        raise FormatError(
            "`response_format.json_schema` must be an object with a `schema` object",
            "response_format.json_schema",
        )
    return GrammarSpec("json_schema", _canonical(schema))


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    inner = tool.get("function")
    return inner if isinstance(inner, dict) else tool


def _call_schema(tool: dict[str, Any], arguments_key: str) -> dict[str, Any]:
    fn = _function(tool)
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object"}
    if not isinstance(params, dict):
        raise FormatError(
            f"the parameters of tool {fn.get('name')!r} must be a JSON schema object", "tools"
        )
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, arguments_key: params},
        "required": ["name", arguments_key],
        "additionalProperties": False,
    }


def _calls(tools: list[dict[str, Any]], arguments_key: str) -> dict[str, Any]:
    """The JSON of one call: any offered name, with that tool's arguments."""
    options = [
        {
            "type": "json_schema",
            "json_schema": _call_schema(t, arguments_key),
            "max_whitespace_cnt": MAX_WHITESPACE,
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"type": "or", "elements": options}


def _hermes_tag(tools: list[dict[str, Any]]) -> dict[str, Any]:
    newline = {"type": "regex", "pattern": r"\n?"}
    return {
        "type": "tag",
        "begin": TOOL_CALL_OPEN,
        "content": {"type": "sequence", "elements": [newline, _calls(tools, "arguments"), newline]},
        "end": TOOL_CALL_CLOSE,
    }


def _forced(tools: list[dict[str, Any]], parallel: bool, hermes: bool) -> dict[str, Any]:
    """Only calls: one, or (parallel) one or more separated by newlines."""
    if not hermes:  # a bare JSON reply holds exactly one call
        return _calls(tools, "parameters")
    return {
        "type": "tags_with_separator",
        "tags": [_hermes_tag(tools)],
        "separator": "\n",
        "at_least_one": True,
        "stop_after_first": not parallel,
    }


def tool_call_spec(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    parallel: bool,
    hermes: bool,
    document: GrammarSpec | None = None,
) -> GrammarSpec | None:
    """The reply's grammar when tools are offered; None when nothing constrains it.

    A forced choice ("required" or a named function) allows only calls. In "auto" a
    Hermes reply is free text until `<tool_call>` opens a call, which must then be a
    valid call (at most one when `parallel` is off); with a response format too, the
    reply is either calls or that document. Auto mode in the bare-JSON format is left
    free: there is no opening markup to trigger on.
    """
    offered = select_tools(tools, tool_choice)
    if not offered:
        return document
    if tool_choice not in (None, "auto"):  # a named function is called once
        fmt = _forced(offered, parallel and tool_choice == "required", hermes)
    elif document is not None:
        fmt = {"type": "or", "elements": [_forced(offered, parallel, hermes), _document(document)]}
    elif hermes:
        fmt = {
            "type": "triggered_tags",
            "triggers": [TOOL_CALL_OPEN],
            "tags": [_hermes_tag(offered)],
            "excludes": [TOOL_CALL_CLOSE],
            "stop_after_first": not parallel,
        }
    else:
        return None
    return GrammarSpec("structural_tag", _canonical({"type": "structural_tag", "format": fmt}))


def _document(spec: GrammarSpec) -> dict[str, Any]:
    schema = json.loads(spec.source) if spec.kind == "json_schema" else {"type": "object"}
    return {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_WHITESPACE}
