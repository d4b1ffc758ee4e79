"""POST /v1/completions: the legacy text API over the same engine."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from cortex.wire import ApiError, read_json_object
from neuron.api import shapes
from neuron.api.generation import Generation, fit_to_context
from neuron.api.requests import GenerationRequest, parse_completion
from neuron.api.sse import EventStream
from neuron.api.state import DAEMON
from neuron.registry import ModelEntry


def completion_prompt(entry: ModelEntry, prompt: str | list[int]) -> tuple[list[int], str]:
    """Token ids and text of a legacy prompt (a string, or token ids)."""
    tokenizer = entry.facts.tokenizer
    if isinstance(prompt, str):
        return tokenizer.encode(prompt), prompt
    vocab = entry.facts.vocab_size
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise ApiError(
            400,
            f"prompt token id {bad[0]} is outside the vocabulary (0..{vocab - 1})",
            param="prompt",
        )
    return prompt, tokenizer.decode(prompt, skip_special_tokens=False)


async def completions(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    arrived = time.monotonic()
    daemon.admit()
    body = await read_json_object(request)
    entry = daemon.registry.get_ready(body.get("model"))
    req = parse_completion(body, entry.facts.generation_defaults)
    prompt_ids, prompt_text = completion_prompt(entry, req.prompt)
    req.params.max_tokens = fit_to_context(entry, len(prompt_ids), req.max_tokens)
    gen = Generation(daemon.registry, daemon.metrics, entry, prompt_ids, req.params, req.n, arrived)
    head = prompt_text if req.echo else ""
    try:
        await gen.start()
        if req.stream:
            return await _stream(request, gen, req, len(prompt_ids), head)
        return await _complete(gen, req, len(prompt_ids), head)
    finally:
        await gen.close()


async def _complete(
    gen: Generation, req: GenerationRequest, prompt_len: int, head: str
) -> web.Response:
    texts = [head] * req.n
    logprobs: list[list[Any]] = [[] for _ in range(req.n)]
    finish: list[tuple[Any, Any]] = [(None, None)] * req.n
    async for index, out in gen.outputs():
        texts[index] += out.text
        logprobs[index] += out.logprobs or []
        if out.finished:
            finish[index] = (out.finish_reason, out.stop_reason)
    choices = []
    for i in range(req.n):
        lp = (
            shapes.completion_logprobs(logprobs[i], len(head))
            if req.params.logprobs is not None
            else None
        )
        choices.append(shapes.completion_choice(i, texts[i], *finish[i], lp))
    body = shapes.envelope("text_completion", f"cmpl-{gen.id}", req.model, choices)
    body["usage"] = shapes.usage(prompt_len, gen.completion_tokens)
    return web.json_response(body)


async def _stream(
    request: web.Request, gen: Generation, req: GenerationRequest, prompt_len: int, head: str
) -> web.StreamResponse:
    stream = EventStream()
    await stream.open(request)
    rid = f"cmpl-{gen.id}"
    extra = {"usage": None} if req.include_usage else {}
    offsets = [len(head)] * req.n

    async def send(choice: dict[str, Any]) -> None:
        await stream.send({**shapes.envelope("text_completion", rid, req.model, [choice]), **extra})

    if head:
        for i in range(req.n):
            await send(shapes.completion_choice(i, head, None, None, None))
    try:
        async for index, out in gen.outputs():
            lp = None
            if req.params.logprobs is not None:
                lp = shapes.completion_logprobs(out.logprobs or [], offsets[index])
            offsets[index] += len(out.text)
            if out.text or lp or out.finished:
                reason = out.finish_reason if out.finished else None
                stop = out.stop_reason if out.finished else None
                await send(shapes.completion_choice(index, out.text, reason, stop, lp))
    except ApiError as err:
        await stream.error(err)
    else:
        if req.include_usage:
            usage = shapes.usage(prompt_len, gen.completion_tokens)
            await stream.send(
                {**shapes.envelope("text_completion", rid, req.model, []), "usage": usage}
            )
    await stream.done()
    return stream.response
