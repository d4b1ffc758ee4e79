"""Inputs that are read, not continued (embeddings, rerank scores): one prefill-only
engine request each, submitted together so the device thread batches them with
whatever else it runs, each ending, and freeing its blocks, in the step that reads
its last token.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from cortex.common.wire import ApiError
from neuron.api.state import DaemonState
from neuron.engine.records import EngineRequest, RequestOutput
from neuron.engine.sampling_params import SamplingParams
from neuron.models.pooling import PoolRequest
from neuron.registry import ModelEntry
from neuron.worker import WorkerFailed

MAX_INPUTS = 2048  # per request, as OpenAI's embeddings endpoint allows
_counter = itertools.count()


def parse_token_ids(entry: ModelEntry, ids: list[Any], where: str) -> list[int]:
    """Token ids from the body: integers within the vocabulary, or a 400 naming the field."""
    vocab = entry.facts.vocab_size
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, int):
            raise ApiError(400, f"`{where}` must hold token ids (integers)", param=where)
        if not 0 <= t < vocab:
            raise ApiError(
                400, f"`{where}` has token id {t}, outside the vocabulary (0..{vocab - 1})",
                param=where,
            )  # fmt: skip
    return ids


def check_length(entry: ModelEntry, ids: list[int], where: str) -> None:
    """An empty input, or one longer than the context, is a 400 that says so."""
    if not ids:
        raise ApiError(400, f"`{where}` is empty", param=where)
    context = entry.facts.context_length
    if len(ids) > context:
        raise ApiError(
            400,
            f"`{where}` has {len(ids)} tokens, but this model's maximum context length is "
            f"{context} tokens",
            param=where,
            code="context_length_exceeded",
        )


async def run_pooled(
    daemon: DaemonState, entry: ModelEntry, prompts: list[list[int]], pool: PoolRequest
) -> list[list[float]]:
    """Each prompt's vector, in order; every request still open is aborted on the way out
    (an error, the client gone)."""
    registry, worker = daemon.registry, entry.worker
    queue: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()
    base = uuid.uuid4().hex[:16]
    ids = [f"emb-{base}-{next(_counter)}" for _ in prompts]
    index = {rid: i for i, rid in enumerate(ids)}
    vectors: list[list[float] | None] = [None] * len(prompts)
    open_ids: set[str] = set()
    params = SamplingParams(max_tokens=1)
    registry.begin(entry)
    try:
        submitted = []
        for rid, prompt in zip(ids, prompts, strict=True):
            request = EngineRequest(rid, prompt, params, pool=pool)
            submitted.append(worker.submit(entry.id, request, queue.put_nowait))
            open_ids.add(rid)
        for result in await asyncio.gather(*submitted, return_exceptions=True):
            if isinstance(result, ValueError):
                raise ApiError(400, str(result))
            if isinstance(result, BaseException):
                raise ApiError(503, str(result), retry_after=5)
        while open_ids:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise ApiError(503, str(item), retry_after=5)
            open_ids.discard(item.request_id)
            vectors[index[item.request_id]] = item.vector
    except WorkerFailed as exc:
        raise ApiError(503, str(exc), retry_after=5) from None
    finally:
        for rid in open_ids:
            worker.abort(entry.id, rid)
        daemon.metrics.tokens.labels(entry.id, "prompt").inc(sum(map(len, prompts)))
        registry.end(entry)
    return [v for v in vectors if v is not None]
