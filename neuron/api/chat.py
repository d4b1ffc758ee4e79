"""POST /v1/chat/completions: the model's chat template, tool calls, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.api import shapes
from neuron.api.generation import (
    Generation,
    admit_generation,
    answer_json,
    run_generation,
    tokenize_input,
)
from neuron.api.requests import ParsedRequest, parse_chat
from neuron.api.sse import relay_chunks
from neuron.grammar.formats import FormatError, tool_call_spec
from neuron.registry import ModelEntry
from neuron.text.chat_template import ChatTemplateError
from neuron.text.tool_calls import ContentEvent, ToolCallStreamParser, collect
from neuron.text.tool_prompt import TOOL_CALL_OPEN, forced_call_prefix


def chat_prompt(
    entry: ModelEntry, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None
) -> tuple[list[int], str]:
    """The prompt ids (the model's own template, plus any forced call opening) and that
    opening, which the reply's parser reads before the model's output."""
    prefix = _call_prefix(entry, tools, tool_choice)
    text = _render(entry, messages, tools, tool_choice) + prefix
    return tokenize_input(entry, text, "messages"), prefix


def chat_prompt_ids(
    entry: ModelEntry, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None
) -> list[int]:
    return chat_prompt(entry, messages, tools, tool_choice)[0]


def _render(entry: ModelEntry, messages: list[dict[str, Any]], tools: Any, tool_choice: Any) -> str:
    template = entry.facts.chat_template
    if template is None:
        raise ApiError(400, f"model {entry.id!r} has no chat template; use /v1/completions")
    try:
        return template.render(messages, tools=tools, tool_choice=tool_choice)
    except ChatTemplateError as exc:
        raise ApiError(400, str(exc), param="messages") from None


def _hermes(entry: ModelEntry) -> bool:
    """Whether the model calls tools in `<tool_call>` tags (ours, or its template's);
    otherwise in Llama 3's bare JSON."""
    template = entry.facts.chat_template
    return template is None or not template.native_tools or TOOL_CALL_OPEN in template.source


def _call_prefix(entry: ModelEntry, tools: Any, tool_choice: Any) -> str:
    """The forced start of the reply for tool_choice "required" or a named function."""
    return forced_call_prefix(tools, tool_choice, _hermes(entry))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    admitted = await admit_generation(request)
    entry, body = admitted[1], admitted[2]
    req = parse_chat(body, entry.facts.generation_defaults)
    prompt, prefix = chat_prompt(entry, req.messages, req.tools, req.tool_choice)
    try:
        req.grammar = tool_call_spec(
            req.tools, req.tool_choice, req.parallel_tool_calls, _hermes(entry), req.grammar
        )
    except FormatError as exc:
        raise ApiError(400, str(exc), param=exc.param) from None
    req.grammar_prefix = prefix if req.grammar is not None else ""

    async def respond(gen: Generation) -> web.StreamResponse:
        if req.stream:
            return await _stream(request, gen, req, len(prompt), prefix)
        return await answer_json(request, lambda: _complete(gen, req, len(prompt), prefix))

    return await run_generation(admitted, prompt, req, respond)


class _Choice:
    """One choice's text, calls and logprobs as they arrive."""

    def __init__(self, tools: bool, prefix: str = "") -> None:
        # A call cut off (or otherwise broken) is dropped, never shown as text.
        self.parser = ToolCallStreamParser(keep_broken=False) if tools else None
        self.events: list[Any] = []
        self.logprobs: list[Any] = []
        self.finish: tuple[str | None, str | int | None] = (None, None)
        self.called = False
        self.pending = prefix  # a forced call opening, parsed with the first output

    def feed(self, text: str, finished: bool) -> list[Any]:
        text, self.pending = self.pending + text, ""
        return self._feed(text, finished)

    def _feed(self, text: str, finished: bool) -> list[Any]:
        if self.parser is None:
            events = [ContentEvent(text)] if text else []
        else:
            events = self.parser.feed(text) + (self.parser.finish() if finished else [])
        self.called = self.called or any(not isinstance(e, ContentEvent) for e in events)
        self.events += events
        return events


async def _complete(
    gen: Generation, req: ParsedRequest, prompt_len: int, prefix: str
) -> dict[str, Any]:
    choices = [_Choice(bool(req.tools), prefix) for _ in range(req.n)]
    async for index, out in gen.outputs():
        choice = choices[index]
        choice.feed(out.text, out.finished)
        choice.logprobs += out.logprobs or []
        if out.finished:
            choice.finish = (out.finish_reason, out.stop_reason)
    body = shapes.envelope("chat.completion", f"chatcmpl-{gen.id}", req.model, [])
    for i, choice in enumerate(choices):
        parsed = collect(choice.events)
        logprobs = choice.logprobs if req.params.logprobs is not None else None
        body["choices"].append(
            shapes.chat_choice(i, parsed.content, parsed.tool_calls, *choice.finish, logprobs)
        )
    body["usage"] = shapes.usage(prompt_len, gen.completion_tokens)
    return body


def _delta(event: Any) -> dict[str, Any]:
    if isinstance(event, ContentEvent):
        return {"content": event.text}
    return {"tool_calls": [shapes.tool_call(event.call, event.index)]}


async def _stream(
    request: web.Request, gen: Generation, req: ParsedRequest, prompt_len: int, prefix: str
) -> web.StreamResponse:
    usage = (lambda: shapes.usage(prompt_len, gen.completion_tokens)) if req.include_usage else None
    chunks = _chunks(gen, req, prefix)
    return await relay_chunks(
        request,
        "chat.completion.chunk",
        f"chatcmpl-{gen.id}",
        req.model,
        chunks,
        usage,
        req.continuous_usage,
    )


async def _chunks(
    gen: Generation, req: ParsedRequest, prefix: str
) -> AsyncIterator[dict[str, Any]]:
    """Role first, then content and tool-call deltas, then each choice's finish."""
    for i in range(req.n):
        yield shapes.chat_delta(i, {"role": "assistant", "content": ""})
    choices = [_Choice(bool(req.tools), prefix) for _ in range(req.n)]
    async for index, out in gen.outputs():
        choice = choices[index]
        events = choice.feed(out.text, out.finished)
        logprobs = out.logprobs if req.params.logprobs is not None else None
        for k, event in enumerate(events):
            yield shapes.chat_delta(index, _delta(event), logprobs=logprobs if k == 0 else None)
        if logprobs and not events:
            yield shapes.chat_delta(index, {}, logprobs=logprobs)
        if out.finished:
            reason = out.finish_reason
            if choice.called and reason == "stop":  # a call cut off still ends "length"
                reason = "tool_calls"
            yield shapes.chat_delta(index, {}, reason, out.stop_reason)
