"""Fill-in-the-middle: `suffix` on /v1/completions, and llama.cpp's POST /infill (what
llama.vscode and other IDE plugins call), both over the model's own FIM tokens.

/infill takes `input_prefix`, `input_suffix`, `input_extra` (other files:
[{filename, text}]), `prompt` (text already typed after the cursor's start, placed
after the middle token), `n_predict` and llama.cpp's sampling names; it answers in
llama.cpp's completion shape (`content`, `tokens_predicted`, `stop`...), streamed as
`data:` events when `stream` is true. Without `model`, a neuron whose only loaded
FIM model is one takes that.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.api.generation import (
    Generation,
    admit_generation,
    answer_json,
    run_generation,
    tokenize_input,
)
from neuron.api.requests import parse_completion
from neuron.api.sse import EventStream
from neuron.engine.records import RequestOutput
from neuron.registry import ModelEntry, Registry
from neuron.text.fim import FimFormat, no_fim_reason

# llama.cpp's sampling field names → ours.
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def _format(entry: ModelEntry, param: str) -> FimFormat:
    if entry.facts.fim is None:
        raise ApiError(400, no_fim_reason(entry.id), param=param)
    return entry.facts.fim


def fim_prompt(entry: ModelEntry, prefix: Any, suffix: str) -> tuple[list[int], str]:
    """The FIM prompt of `prompt` + `suffix` on /v1/completions, as ids and text."""
    fmt = _format(entry, "suffix")
    if not isinstance(prefix, str):
        raise ApiError(400, "`suffix` needs `prompt` to be a string", param="suffix")
    text = fmt.prompt(prefix, suffix)
    return tokenize_input(entry, text, "prompt"), text


def only_fim_model(registry: Registry) -> str | None:
    """The one ready model with FIM tokens, when there is exactly one."""
    ids = [
        e.id
        for e in registry.entries.values()
        if e.status == "ready" and e.facts is not None and e.facts.fim is not None
    ]
    return ids[0] if len(ids) == 1 else None


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"`{key}` must be a string", param=key)
    return value


def _extra(body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = body.get("input_extra") or []
    ok = isinstance(chunks, list) and all(
        isinstance(c, dict) and isinstance(c.get("text", ""), str)
        and isinstance(c.get("filename", ""), str)
        for c in chunks
    )  # fmt: skip
    if not ok:
        raise ApiError(
            400, "`input_extra` must be an array of {filename, text}", param="input_extra"
        )
    return chunks


async def infill(request: web.Request) -> web.StreamResponse:
    admitted = await admit_generation(request, only_fim_model)
    entry, body = admitted.entry, admitted.body
    fmt = _format(entry, "model")
    text = fmt.prompt(_string(body, "input_prefix"), _string(body, "input_suffix"), _extra(body))
    text += _string(body, "prompt")
    prompt_ids = tokenize_input(entry, text, "input_prefix")
    n_predict = body.get("n_predict")
    if n_predict is not None and (isinstance(n_predict, bool) or not isinstance(n_predict, int)):
        raise ApiError(400, "`n_predict` must be an integer", param="n_predict")
    fields = {ours: body[theirs] for theirs, ours in _SAMPLING.items() if theirs in body}
    limit = n_predict if n_predict is not None and n_predict > 0 else None
    completion = {"model": entry.id, "prompt": text, "max_tokens": limit, **fields}
    req = parse_completion(completion, entry.facts.generation_defaults)
    req.max_tokens = limit  # none: up to the context, as llama.cpp's n_predict = -1
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "`stream` must be a boolean", param="stream")

    async def respond(gen: Generation) -> web.StreamResponse:
        if stream:
            return await _stream(request, gen, entry.id, len(prompt_ids))
        return await answer_json(request, lambda: _whole(gen, entry.id, len(prompt_ids)))

    return await run_generation(admitted, prompt_ids, req, respond)


def _final(model: str, content: str, out: RequestOutput | None, prompt_len: int) -> dict:
    """llama.cpp's closing fields: what was counted and why it stopped."""
    word = out.stop_reason if out is not None and isinstance(out.stop_reason, str) else ""
    reason = out.finish_reason if out is not None else None
    return {
        "content": content,
        "model": model,
        "stop": True,
        "tokens_predicted": out.completion_tokens if out is not None else 0,
        "tokens_evaluated": prompt_len,
        "stopped_eos": reason == "stop" and not word,
        "stopped_word": bool(word),
        "stopped_limit": reason == "length",
        "stopping_word": word,
        "truncated": False,
    }


async def _whole(gen: Generation, model: str, prompt_len: int) -> dict[str, Any]:
    content, last = "", None
    async for _index, out in gen.outputs():
        content += out.text
        last = out
    return _final(model, content, last, prompt_len)


async def _stream(
    request: web.Request, gen: Generation, model: str, prompt_len: int
) -> web.StreamResponse:
    """llama.cpp's stream: a `data:` event per piece of text, then the closing fields."""
    stream = EventStream()
    await stream.open(request)
    try:
        async for _index, out in gen.outputs():
            if out.finished:
                await stream.send(_final(model, out.text, out, prompt_len))
            elif out.text:
                await stream.send({"content": out.text, "stop": False})
    except ApiError as err:
        await stream.error(err)
    await stream.response.write_eof()
    return stream.response
