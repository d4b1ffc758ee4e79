"""POST /v1/chat/completions: the model's chat template, tool calls, streaming."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from cortex.wire import ApiError, read_json_object
from neuron.api import shapes
from neuron.api.generation import Generation, fit_to_context
from neuron.api.requests import GenerationRequest, parse_chat
from neuron.api.sse import EventStream
from neuron.api.state import DAEMON
from neuron.registry import ModelEntry
from neuron.text.chat_template import ChatTemplateError
from neuron.text.tool_calls import ContentEvent, ToolCallStreamParser, collect


def chat_prompt_ids(
    entry: ModelEntry, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None
) -> list[int]:
    """Render the conversation with the model's own template and tokenize it."""
    template = entry.facts.chat_template
    if template is None:
        raise ApiError(400, f"model {entry.id!r} has no chat template; use /v1/completions")
    try:
        text = template.render(messages, tools=tools, tool_choice=tool_choice)
    except ChatTemplateError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    return entry.facts.tokenizer.encode(text)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    arrived = time.monotonic()
    daemon.admit()
    body = await read_json_object(request)
    entry = daemon.registry.get_ready(body.get("model"))
    req = parse_chat(body, entry.facts.generation_defaults)
    prompt = chat_prompt_ids(entry, req.messages, req.tools, req.tool_choice)
    req.params.max_tokens = fit_to_context(entry, len(prompt), req.max_tokens)
    gen = Generation(daemon.registry, daemon.metrics, entry, prompt, req.params, req.n, arrived)
    try:
        await gen.start()
        if req.stream:
            return await _stream(request, gen, req, len(prompt))
        return await _complete(gen, req, len(prompt))
    finally:
        await gen.close()


class _Choice:
    """One choice's text, calls and logprobs as they arrive."""

    def __init__(self, tools: bool) -> None:
        self.parser = ToolCallStreamParser() if tools else None
        self.events: list[Any] = []
        self.logprobs: list[Any] = []
        self.finish: tuple[str | None, str | int | None] = (None, None)
        self.called = False

    def feed(self, text: str, finished: bool) -> list[Any]:
        if self.parser is None:
            events = [ContentEvent(text)] if text else []
        else:
            events = self.parser.feed(text) + (self.parser.finish() if finished else [])
        self.called = self.called or any(not isinstance(e, ContentEvent) for e in events)
        self.events += events
        return events


async def _complete(gen: Generation, req: GenerationRequest, prompt_len: int) -> web.Response:
    choices = [_Choice(bool(req.tools)) for _ in range(req.n)]
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
    return web.json_response(body)


def _delta(event: Any) -> dict[str, Any]:
    if isinstance(event, ContentEvent):
        return {"content": event.text}
    return {"tool_calls": [shapes.tool_call(event.call, event.index)]}


async def _stream(
    request: web.Request, gen: Generation, req: GenerationRequest, prompt_len: int
) -> web.StreamResponse:
    stream = EventStream()
    await stream.open(request)
    rid = f"chatcmpl-{gen.id}"
    extra = {"usage": None} if req.include_usage else {}

    async def send(choice: dict[str, Any]) -> None:
        await stream.send(
            {**shapes.envelope("chat.completion.chunk", rid, req.model, [choice]), **extra}
        )

    for i in range(req.n):
        await send(shapes.chat_delta(i, {"role": "assistant", "content": ""}))
    choices = [_Choice(bool(req.tools)) for _ in range(req.n)]
    try:
        async for index, out in gen.outputs():
            choice = choices[index]
            events = choice.feed(out.text, out.finished)
            logprobs = out.logprobs if req.params.logprobs is not None else None
            for k, event in enumerate(events):
                await send(
                    shapes.chat_delta(index, _delta(event), logprobs=logprobs if k == 0 else None)
                )
            if logprobs and not events:
                await send(shapes.chat_delta(index, {}, logprobs=logprobs))
            if out.finished:
                reason = "tool_calls" if choice.called else out.finish_reason
                await send(shapes.chat_delta(index, {}, reason, out.stop_reason))
    except ApiError as err:
        await stream.error(err)
    else:
        if req.include_usage:
            usage = shapes.usage(prompt_len, gen.completion_tokens)
            await stream.send(
                {**shapes.envelope("chat.completion.chunk", rid, req.model, []), "usage": usage}
            )
    await stream.done()
    return stream.response
