"""Render a model's own Jinja chat template, sandboxed, the way transformers does.

Templates come from model repositories and GGUF files, i.e. from strangers: they run in
jinja2's ImmutableSandboxedEnvironment, which refuses unsafe attribute access and
mutation of the data handed in. Options and helpers (trim_blocks, lstrip_blocks,
raise_exception, strftime_now, a non-escaping tojson) match transformers'
apply_chat_template so a prompt renders identically here and there.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from neuron.text.tool_prompt import (
    plain_tool_conversation,
    select_tools,
    tool_arguments_as_objects,
)


class ChatTemplateError(ValueError):
    """The template failed to compile or render (message says why); a 400 for clients."""


class _GenerationTag(Extension):
    """`{% generation %}…{% endgeneration %}` marks assistant text for training masks in
    transformers; for serving it renders its body unchanged."""

    tags = frozenset({"generation"})

    def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    """Compiled template and the variables it reads (cached: one per loaded model)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        variables = frozenset(meta.find_undeclared_variables(env.parse(source)))
        return env.from_string(source), variables
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"chat template does not compile: {exc}") from exc


# A template that looks at a part's "type" handles content lists itself.
_READS_PARTS = re.compile(r"""\[\s*['"]type['"]\s*\]|\.type\b""")


def _text_only(message: dict[str, Any], flatten: bool) -> dict[str, Any]:
    """Check that content parts are all text (nothing else can reach a text model) and,
    for templates that print content as a string, join them into one."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ChatTemplateError(
                f"unsupported content part type {kind!r}: only text is accepted"
            )
    if not flatten:
        return message
    return {**message, "content": "".join(part["text"] for part in content)}


class ChatTemplate:
    """One model's chat template with its special tokens bound."""

    def __init__(self, template: str, bos_token: str | None = None, eos_token: str | None = None):
        self.source = template
        self.bos_token = bos_token or ""
        self.eos_token = eos_token or ""
        self._template, self._variables = _compile(template)
        self.native_tools = "tools" in self._variables
        self._reads_parts = bool(_READS_PARTS.search(template))

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> str:
        """The prompt text. Tools go to the template when it knows them; otherwise a
        Hermes-style tool prompt is written into the conversation (see tool_prompt)."""
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ChatTemplateError("messages must be a list of objects")
        messages = [_text_only(m, flatten=not self._reads_parts) for m in messages]
        messages = tool_arguments_as_objects(messages)
        if not self.native_tools:
            messages = plain_tool_conversation(messages, tools, tool_choice)
        offered = select_tools(tools, tool_choice) if self.native_tools else []
        context = {
            **kwargs,  # extra template switches (enable_thinking...) never override these
            "messages": messages,
            "tools": offered or None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        try:
            return self._template.render(context)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"chat template error: {exc}") from exc
        except Exception as exc:  # the template is foreign code: any failure is its own
            raise ChatTemplateError(f"chat template failed on these messages: {exc!r}") from exc
