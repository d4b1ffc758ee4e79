"""POST /v1/rerank in the Jina/Cohere shape vLLM and llama.cpp serve: a query, documents
(strings or {text}), `top_n`; results best first, each with its `index` and
`relevance_score` (and the document unless `return_documents` is false)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError
from neuron.api.generation import admit_generation
from neuron.api.pooled import MAX_INPUTS, check_length, run_pooled
from neuron.models.pooling import PoolRequest


def _text(value: Any, where: str) -> str:
    text = value.get("text") if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise ApiError(400, f"`{where}` must be a string or an object with `text`", param=where)
    return text


def _documents(body: dict[str, Any]) -> list[str]:
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        raise ApiError(400, "`documents` must be a non-empty array", param="documents")
    if len(docs) > MAX_INPUTS:
        raise ApiError(
            400, f"`documents` has {len(docs)} items; at most {MAX_INPUTS} are allowed",
            param="documents",
        )  # fmt: skip
    return [_text(d, f"documents[{i}]") for i, d in enumerate(docs)]


def _top_n(body: dict[str, Any], count: int) -> int:
    top_n = body.get("top_n")
    if top_n is None:
        return count
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ApiError(400, f"`top_n` must be a positive integer, got {top_n!r}", param="top_n")
    return min(top_n, count)


async def rerank(request: web.Request) -> web.Response:
    admitted = await admit_generation(request)
    entry, body = admitted.entry, admitted.body
    judge = entry.facts.judge
    if judge is None:
        raise ApiError(
            400,
            f"model {entry.id!r} cannot rerank: it is not a reranker (a Qwen3-Reranker-style "
            "yes/no judge)",
            param="model",
        )
    query = _text(body.get("query"), "query")
    if not query:
        raise ApiError(400, "`query` is empty", param="query")
    docs = _documents(body)
    top_n = _top_n(body, len(docs))
    instruction = body.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise ApiError(400, "`instruction` must be a string", param="instruction")
    tokenizer = entry.facts.tokenizer
    prompts = [judge.prompt_ids(tokenizer, query, doc, instruction) for doc in docs]
    for i, ids in enumerate(prompts):
        check_length(entry, ids, f"documents[{i}]")
    pool = PoolRequest(entry.facts.pooling, judge.score_ids, judge.classify)
    logits = await run_pooled(admitted.daemon, entry, prompts, pool)
    scores = [judge.score(pair) for pair in logits]
    order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_n]
    with_docs = body.get("return_documents", True) is not False
    results = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if with_docs:
            result["document"] = {"text": docs[i]}
        results.append(result)
    tokens = sum(map(len, prompts))
    return web.json_response(
        {
            "id": f"rerank-{uuid.uuid4().hex[:24]}",
            "model": entry.id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": results,
        }
    )
