"""One HTTP request's generation: its n engine requests, merged into one output stream.

Submission goes through the model's device worker; outputs come back on an
asyncio.Queue. Closing the generation (normally, on error, or because the client
went away and the handler was cancelled) aborts whatever is unfinished so its KV
blocks return to the pool at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError, read_json_object
from neuron.api import shapes
from neuron.api.requests import ParsedRequest
from neuron.api.sse import relay_chunks
from neuron.api.state import DAEMON, DaemonState
from neuron.api.structured import compile_grammar
from neuron.engine.records import EngineRequest, RequestOutput
from neuron.engine.sampling_params import SamplingParams
from neuron.metrics import NeuronMetrics
from neuron.registry import ModelEntry, Registry
from neuron.text.tokenizer import UntokenizableText
from neuron.worker import WorkerFailed

_counter = itertools.count()


def tokenize_input(entry: ModelEntry, text: str, param: str) -> list[int]:
    """The prompt's token ids, or a 400 naming the field when the text cannot be tokenized."""
    try:
        return entry.facts.tokenizer.encode(text)
    except UntokenizableText as exc:
        raise ApiError(400, f"`{param}` cannot be tokenized: {exc}", param=param) from None


# A choice's stop_reason when it ended at the end of the context (`truncate_max_tokens`).
CONTEXT_WINDOW = "context_window"


def fit_to_context(
    entry: ModelEntry, prompt_len: int, max_tokens: int | None, truncate: bool = False
) -> tuple[int, bool]:
    """The max_tokens to use and whether the context cut it (only when `truncate` allows
    that), or a 400 that states the numbers when it cannot fit."""
    context = entry.facts.context_length
    room = context - prompt_len
    if max_tokens is None and room >= 1:
        return room, False
    if max_tokens is not None and max_tokens <= room:
        return max_tokens, False
    if truncate and room >= 1:
        return room, True
    asked = f" and {max_tokens} completion tokens" if max_tokens is not None else ""
    raise ApiError(
        400,
        f"this model's maximum context length is {context} tokens; the request has "
        f"{prompt_len} prompt tokens{asked}",
        param="messages" if max_tokens is None or room < 1 else "max_tokens",
        code="context_length_exceeded",
    )


class Generation:
    """n sequences of one request; iterate for (choice index, RequestOutput)."""

    def __init__(
        self,
        registry: Registry,
        metrics: NeuronMetrics,
        entry: ModelEntry,
        prompt_ids: list[int],
        params: SamplingParams,
        n: int,
        arrived: float,
        capped: bool = False,
        grammar: Any = None,
        grammar_prefix: str = "",
    ) -> None:
        self.id = uuid.uuid4().hex[:24]
        self._capped = capped  # max_tokens was cut to the context's room
        self._registry, self._metrics, self._entry = registry, metrics, entry
        self._prompt_ids, self._params, self._n = prompt_ids, params, n
        self._arrived = arrived
        self._grammar, self._grammar_prefix = grammar, grammar_prefix
        self._queue: asyncio.Queue = asyncio.Queue()
        self._index: dict[str, int] = {}
        self._open: set[str] = set()
        self._first: float | None = None
        self.completion_tokens = 0
        self.cached_tokens = 0  # prompt tokens the prefix cache served (the best of the n)

    async def start(self) -> None:
        """Submit every sequence; a refusal (e.g. too long for the engine) is a 400."""
        self._registry.begin(self._entry)
        worker, model = self._entry.worker, self._entry.id
        for i in range(self._n):
            rid = f"{self.id}-{next(_counter)}"
            params = self._params
            if params.seed is not None and self._n > 1:  # distinct yet reproducible choices
                params = dataclasses.replace(params, seed=params.seed + i)
            self._index[rid] = i
            self._open.add(rid)
            try:
                engine_request = EngineRequest(
                    rid, self._prompt_ids, params, self._grammar, self._grammar_prefix
                )
                await worker.submit(model, engine_request, self._queue.put_nowait)
            except ValueError as exc:
                self._open.discard(rid)
                raise ApiError(400, str(exc)) from None
            except WorkerFailed as exc:
                self._open.discard(rid)
                raise ApiError(503, str(exc), retry_after=5) from None
        self._metrics.queue_time.labels(model).observe(time.monotonic() - self._arrived)

    async def outputs(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        while self._open:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                self._open.clear()
                raise ApiError(503, str(item), retry_after=5)
            now = time.monotonic()
            self.cached_tokens = max(self.cached_tokens, item.cached_tokens)
            if self._first is None and item.token_ids:
                self._first = now
                self._metrics.ttft.labels(self._entry.id).observe(now - self._arrived)
            if item.finished:
                self._open.discard(item.request_id)
                self._finished(item, now)
                if self._capped and item.finish_reason == "length":
                    item.stop_reason = CONTEXT_WINDOW
            yield self._index[item.request_id], item

    def usage(self) -> dict[str, Any]:
        """The usage block of the answer, as far as the sequences have got."""
        return shapes.usage(len(self._prompt_ids), self.completion_tokens, self.cached_tokens)

    def _finished(self, item: RequestOutput, now: float) -> None:
        self.completion_tokens += item.completion_tokens
        model = self._entry.id
        self._metrics.tokens.labels(model, "completion").inc(item.completion_tokens)
        if self._first is not None and item.completion_tokens > 1:
            per_token = (now - self._first) / (item.completion_tokens - 1)
            self._metrics.tpot.labels(model).observe(per_token)

    async def close(self) -> None:
        """Abort unfinished sequences (client gone or error) and release the model."""
        for rid in self._open:
            self._entry.worker.abort(self._entry.id, rid)
        self._open.clear()
        model = self._entry.id
        self._metrics.tokens.labels(model, "prompt").inc(len(self._prompt_ids))
        self._metrics.prefix_queries.labels(model).inc(len(self._prompt_ids))
        self._metrics.prefix_hits.labels(model).inc(self.cached_tokens)
        self._registry.end(self._entry)


async def answer_json(
    request: web.Request, body: Callable[[], Awaitable[dict[str, Any]]]
) -> web.StreamResponse:
    """A non-streamed answer whose 200 head goes out as soon as the sequences run (the
    gateway's first-byte deadline then sees a live node, however long the answer takes);
    the JSON follows once complete. A failure after the head can no longer change the
    status: the connection is cut, which the gateway counts against this node."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        payload = await body()
    except ApiError as err:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"generation failed after the answer began: {err}") from None
    await response.write(json.dumps(payload).encode())
    await response.write_eof()
    return response


async def stream_answer(
    request: web.Request,
    gen: Generation,
    req: ParsedRequest,
    kind: str,
    rid: str,
    chunks: AsyncIterator[dict[str, Any]],
) -> web.StreamResponse:
    """A streamed answer: each chunk as a `kind` event, with the usage the request asked
    for (at the end, or in every chunk too)."""
    usage = gen.usage if req.include_usage else None
    return await relay_chunks(request, kind, rid, req.model, chunks, usage, req.continuous_usage)


@dataclass
class Admission:
    """A generation request let in: the daemon, the ready model, its body, when it came."""

    daemon: DaemonState
    entry: ModelEntry
    body: dict[str, Any]
    arrived: float  # time.monotonic()


async def admit_generation(
    request: web.Request, default_model: Callable[[Registry], str | None] | None = None
) -> Admission:
    """Let a generation request in, or raise its 4xx/503; `default_model` names the model
    of a body that names none."""
    daemon = request.app[DAEMON]
    arrived = time.monotonic()
    daemon.admit()
    body = await read_json_object(request)
    model = body.get("model")
    if model is None and default_model is not None:
        model = default_model(daemon.registry)
    return Admission(daemon, daemon.registry.get_ready(model), body, arrived)


async def run_generation(
    admitted: Admission,
    prompt_ids: list[int],
    request: ParsedRequest,
    respond: Callable[[Generation], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Fit max_tokens to the context, compile any grammar, start the sequences, respond,
    always clean up."""
    daemon, entry = admitted.daemon, admitted.entry
    if not entry.facts.generates:
        raise ApiError(
            400,
            f"model {entry.id!r} is a sequence classifier (it reranks); it cannot generate text",
            param="model",
        )
    request.params.max_tokens, capped = fit_to_context(
        entry, len(prompt_ids), request.max_tokens, request.truncate
    )
    grammar = None
    if request.grammar is not None:
        grammar = await compile_grammar(entry.facts.grammars, request.grammar)
    gen = Generation(
        daemon.registry, daemon.metrics, entry, prompt_ids, request.params, request.n,
        admitted.arrived, capped, grammar, request.grammar_prefix,
    )  # fmt: skip
    try:
        await gen.start()
        return await respond(gen)
    finally:
        await gen.close()
