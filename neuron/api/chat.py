"""POST /v1/chat/completions: the model's chat template, reasoning, tool calls, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.api import shapes
from neuron.api.generation import (
    Generation,
    admit_generation,
    answer_json,
    run_generation,
    stream_answer,
    tokenize_input,
)
from neuron.api.requests import ParsedRequest, parse_chat
from neuron.grammar.formats import FormatError, tool_call_spec
from neuron.registry import ModelEntry
from neuron.text.chat_template import ChatTemplateError
from neuron.text.reasoning import ThinkSplitter, opens_in_prompt
from neuron.text.tool_calls import ContentEvent, ToolCallStreamParser, collect
from neuron.text.tool_prompt import TOOL_CALL_OPEN, forced_call_prefix


@dataclass
class ChatPrompt:
    """The prompt ids and what the reply's parser must know about how the prompt ends."""

    ids: list[int]
    prefix: str  # a forced tool-call opening, read before the model's output
    think_open: bool  # the prompt leaves a <think> block open


def chat_prompt(entry: ModelEntry, req: ParsedRequest) -> ChatPrompt:
    """The model's own template over the request (plus any forced call opening)."""
    prefix = _call_prefix(entry, req.tools, req.tool_choice)
    messages, tail = req.messages, ""
    if req.continue_final:  # prefill: the template opens the turn, the text continues it
        messages, tail = messages[:-1], _text(messages[-1].get("content"))
    text = _render(entry, messages, req) + tail
    ids = tokenize_input(entry, text + prefix, "messages")
    return ChatPrompt(ids, prefix, opens_in_prompt(text))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


def _render(entry: ModelEntry, messages: list[dict[str, Any]], req: ParsedRequest) -> str:
    template = entry.facts.chat_template
    if template is None:
        raise ApiError(400, f"model {entry.id!r} has no chat template; use /v1/completions")
    if not messages:
        raise ApiError(400, "`messages` needs a turn before the continued one", param="messages")
    try:
        return template.render(
            messages, tools=req.tools, tool_choice=req.tool_choice, **req.template_kwargs
        )
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
    entry, body = admitted.entry, admitted.body
    req = parse_chat(body, entry.facts.generation_defaults)
    prompt = chat_prompt(entry, req)
    req.params.think_in_prompt = prompt.think_open
    try:
        req.grammar = tool_call_spec(
            req.tools, req.tool_choice, req.parallel_tool_calls, _hermes(entry), req.grammar
        )
    except FormatError as exc:
        raise ApiError(400, str(exc), param=exc.param) from None
    req.grammar_prefix = prompt.prefix if req.grammar is not None else ""

    async def respond(gen: Generation) -> web.StreamResponse:
        if req.stream:
            chunks = _chunks(gen, req, prompt)
            kind, rid = "chat.completion.chunk", f"chatcmpl-{gen.id}"
            return await stream_answer(request, gen, req, kind, rid, chunks)
        return await answer_json(request, lambda: _complete(gen, req, prompt))

    return await run_generation(admitted, prompt.ids, req, respond)


@dataclass(frozen=True)
class ReasoningEvent:
    text: str


class _Choice:
    """One choice's reasoning, text, calls and logprobs as they arrive."""

    def __init__(self, tools: bool, prompt: ChatPrompt) -> None:
        # A call cut off (or otherwise broken) is dropped, never shown as text.
        self.parser = ToolCallStreamParser(keep_broken=False) if tools else None
        self.thinking = ThinkSplitter(inside=prompt.think_open)
        self.events: list[Any] = []
        self.reasoning: list[str] = []
        self.logprobs: list[Any] = []
        self.finish: tuple[str | None, str | int | None] = (None, None)
        self.called = False
        self.pending = prompt.prefix  # a forced call opening, parsed with the first output

    def feed(self, text: str, finished: bool) -> list[Any]:
        split = self.thinking.feed(text)
        if finished:
            tail = self.thinking.finish()
            split.reasoning, split.content = (
                split.reasoning + tail.reasoning,
                split.content + tail.content,
            )
        events: list[Any] = [ReasoningEvent(split.reasoning)] if split.reasoning else []
        self.reasoning += [split.reasoning]
        content, self.pending = self.pending + split.content, ""
        return events + self._feed(content, finished)

    def _feed(self, text: str, finished: bool) -> list[Any]:
        if self.parser is None:
            events = [ContentEvent(text)] if text else []
        else:
            events = self.parser.feed(text) + (self.parser.finish() if finished else [])
        self.called = self.called or any(not isinstance(e, ContentEvent) for e in events)
        self.events += events
        return events


async def _complete(gen: Generation, req: ParsedRequest, prompt: ChatPrompt) -> dict[str, Any]:
    choices = [_Choice(bool(req.tools), prompt) for _ in range(req.n)]
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
        reasoning = "".join(choice.reasoning) or None
        body["choices"].append(
            shapes.chat_choice(
                i, parsed.content, parsed.tool_calls, *choice.finish, logprobs, reasoning
            )
        )
    body["usage"] = gen.usage()
    return body


def _delta(event: Any) -> dict[str, Any]:
    if isinstance(event, ReasoningEvent):
        return {"reasoning_content": event.text}
    if isinstance(event, ContentEvent):
        return {"content": event.text}
    return {"tool_calls": [shapes.tool_call(event.call, event.index)]}


async def _chunks(
    gen: Generation, req: ParsedRequest, prompt: ChatPrompt
) -> AsyncIterator[dict[str, Any]]:
    """Role first, then reasoning, content and tool-call deltas, then each choice's finish."""
    for i in range(req.n):
        yield shapes.chat_delta(i, {"role": "assistant", "content": ""})
    choices = [_Choice(bool(req.tools), prompt) for _ in range(req.n)]
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
