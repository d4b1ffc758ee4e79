"""POST /v1/completions: the legacy text API over the same engine."""

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
    stream_answer,
    tokenize_input,
)
from neuron.api.infill import fim_prompt
from neuron.api.requests import ParsedRequest, parse_completion
from neuron.registry import ModelEntry


def completion_prompt(entry: ModelEntry, prompt: str | list[int]) -> tuple[list[int], str]:
    """Token ids and text of a legacy prompt (a string, or token ids)."""
    tokenizer = entry.facts.tokenizer
    if isinstance(prompt, str):
        return tokenize_input(entry, prompt, "prompt"), prompt
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
    admitted = await admit_generation(request)
    entry, body = admitted.entry, admitted.body
    req = parse_completion(body, entry.facts.generation_defaults)
    if req.suffix is not None:
        prompt_ids, prompt_text = fim_prompt(entry, req.prompt, req.suffix)
    else:
        prompt_ids, prompt_text = completion_prompt(entry, req.prompt)
    head = prompt_text if req.echo else ""

    async def respond(gen: Generation) -> web.StreamResponse:
        if req.stream:
            chunks = _chunks(gen, req, head)
            return await stream_answer(
                request, gen, req, "text_completion", f"cmpl-{gen.id}", chunks
            )
        return await answer_json(request, lambda: _complete(gen, req, head))

    return await run_generation(admitted, prompt_ids, req, respond)


async def _complete(gen: Generation, req: ParsedRequest, head: str) -> dict[str, Any]:
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
    body["usage"] = gen.usage()
    return body


async def _chunks(gen: Generation, req: ParsedRequest, head: str) -> AsyncIterator[dict[str, Any]]:
    """The echoed prompt (if asked), then each output's text, logprobs and finish."""
    offsets = [len(head)] * req.n
    if head:
        for i in range(req.n):
            yield shapes.completion_choice(i, head, None, None, None)
    async for index, out in gen.outputs():
        lp = None
        if req.params.logprobs is not None:
            lp = shapes.completion_logprobs(out.logprobs or [], offsets[index])
        offsets[index] += len(out.text)
        if out.text or lp or out.finished:
            reason = out.finish_reason if out.finished else None
            stop = out.stop_reason if out.finished else None
            yield shapes.completion_choice(index, out.text, reason, stop, lp)
