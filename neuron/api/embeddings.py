"""POST /v1/embeddings in OpenAI's shape: strings or token ids in, one pooled vector each.

`dimensions` keeps the leading components and renormalises them (Matryoshka-trained
models such as Qwen3-Embedding are meant to be cut so); `base64` is the float32
little-endian bytes the openai SDK asks for by default.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.api.generation import admit_generation
from neuron.api.pooled import MAX_INPUTS, check_length, parse_token_ids, run_pooled
from neuron.models.pooling import PoolRequest
from neuron.registry import ModelEntry
from neuron.text.tokenizer import UntokenizableText

_FORMATS = ("float", "base64")


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def parse_input(entry: ModelEntry, value: Any) -> list[list[int]]:
    """`input` as token ids: a string, strings, token ids, or arrays of token ids."""
    if isinstance(value, str) or (_is_ids(value) and value):
        items: list[Any] = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise ApiError(
            400, "`input` must be a non-empty string or array (of strings or token ids)",
            param="input",
        )  # fmt: skip
    if len(items) > MAX_INPUTS:
        raise ApiError(
            400, f"`input` has {len(items)} items; at most {MAX_INPUTS} are allowed", param="input"
        )
    prompts = []
    for i, item in enumerate(items):
        where = f"input[{i}]" if len(items) > 1 or not isinstance(value, str) else "input"
        if isinstance(item, str):
            if not item:
                raise ApiError(400, f"`{where}` is an empty string", param=where)
            try:
                ids = entry.facts.tokenizer.encode(item, post_process=True)
            except UntokenizableText as exc:
                raise ApiError(400, f"`{where}` cannot be tokenized: {exc}", param=where) from None
        elif isinstance(item, list):
            ids = parse_token_ids(entry, item, where)
        else:
            raise ApiError(400, f"`{where}` must be a string or an array of token ids", param=where)
        check_length(entry, ids, where)
        prompts.append(ids)
    return prompts


def _dimensions(body: dict[str, Any], size: int) -> int | None:
    dims = body.get("dimensions")
    if dims is None:
        return None
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= size:
        raise ApiError(
            400,
            f"`dimensions` must be an integer from 1 to {size} (this model's embedding size), "
            f"got {dims!r}",
            param="dimensions",
        )
    return dims


def shorten(vector: list[float], dims: int | None) -> list[float]:
    """The first `dims` components, renormalised to unit length."""
    if dims is None or dims == len(vector):
        return vector
    head = vector[:dims]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


def encode_vector(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def embeddings(request: web.Request) -> web.Response:
    admitted = await admit_generation(request)
    entry, body = admitted.entry, admitted.body
    fmt = body.get("encoding_format") or "float"
    if fmt not in _FORMATS:
        raise ApiError(
            400, f"`encoding_format` must be float or base64, got {fmt!r}", param="encoding_format"
        )
    dims = _dimensions(body, entry.facts.hidden_size)
    prompts = parse_input(entry, body.get("input"))
    pool = PoolRequest(entry.facts.pooling)
    vectors = await run_pooled(admitted.daemon, entry, prompts, pool)
    data = [
        {"object": "embedding", "index": i, "embedding": encode_vector(shorten(v, dims), fmt)}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(map(len, prompts))
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": entry.id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
