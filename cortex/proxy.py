"""The proxy core every dialect calls: route a request body to a neuron and open the answer.

Stable interface (used by cortex.dialects.openai and cortex.dialects.anthropic_routes)::

    upstream = await open_upstream(request, body, path="/v1/chat/completions",
                                   dialect="anthropic", keepalive=ping)
    async with upstream:
        ...  # read upstream.response (an aiohttp.ClientResponse with status 200)
        upstream.record(usage, first_token_at)

`open_upstream` resolves aliases (rewriting `body["model"]`), routes (waiting for or
cold-loading the model, calling `keepalive()` every `routing.keepalive_seconds`
while it waits), sends the body, and retries once on another node when the first
fails before answering (`exclude` names nodes not to use, for a caller's own retry).
It raises `cortex.wire.ApiError` for routing and upstream
errors (an upstream error body is mapped with `openai_error_from_upstream`).
Leaving `async with upstream` releases the connection and the in-flight slot and
records the request metrics; an exception escaping it counts as 502 (499 when the
client went away), and a caller that ends the response with an error itself sets
`upstream.code`. `upstream.record(usage, first_token_at)` reports the OpenAI usage
object and the `time.monotonic()` of the first token (TTFT is measured from the
arrival of the request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from cortex.fleet import Node
from cortex.neuron_client import describe_exc
from cortex.state import COUNTED, STARTED, State, state_of
from cortex.wire import ApiError, openai_error_from_upstream

__all__ = ["Upstream", "open_upstream", "record_failure"]
log = logging.getLogger("cortex.proxy")


class Upstream:
    """An open 200 answer from a neuron, holding one in-flight slot until closed."""

    def __init__(
        self,
        state: State,
        node: Node,
        model: str,
        dialect: str,
        response: aiohttp.ClientResponse,
        started: float,
    ) -> None:
        self.state, self.node, self.dialect = state, node, dialect
        self.model, self.response, self.started = model, response, started
        self.code = 200
        self._usage: dict[str, Any] | None = None
        self._first_token_at: float | None = None

    def record(self, usage: dict[str, Any] | None, first_token_at: float | None) -> None:
        if usage is not None:
            self._usage = usage
        if first_token_at is not None and self._first_token_at is None:
            self._first_token_at = first_token_at

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.response.release()
        self.state.router.release(self.node, self.model)
        if exc_type is not None:
            gone = issubclass(exc_type, (asyncio.CancelledError, ConnectionResetError))
            self.code = 499 if gone else 502
        self._observe()

    def _observe(self) -> None:
        m, node, model = self.state.metrics, self.node.name, self.model
        end = time.monotonic()
        m.requests.labels(model, node, self.dialect, str(self.code)).inc()
        m.duration.labels(model, node, self.dialect).observe(end - self.started)
        first = self._first_token_at
        if first is not None:
            m.ttft.labels(model, node, self.dialect).observe(max(0.0, first - self.started))
        usage = self._usage or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            m.tokens.labels(model, node, "prompt").inc(prompt)
        if isinstance(completion, int):
            m.tokens.labels(model, node, "completion").inc(completion)
            if first is not None and completion > 1 and end > first:
                m.tokens_per_second.labels(model, node).observe((completion - 1) / (end - first))


async def open_upstream(
    request: web.Request,
    body: dict,
    *,
    path: str,
    dialect: str,
    keepalive: Callable[[], Awaitable[None]] | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Upstream:
    state = state_of(request)
    started = request.get(STARTED, time.monotonic())
    request[COUNTED] = True  # here on, the proxy (or Upstream) counts the request
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise _count(
            state, "none", dialect, ApiError(400, "`model` must be a non-empty string", "model")
        )
    model = state.catalogue.resolve(name)
    body["model"] = model
    label = model if state.router.known(model) else "unknown"
    stream = bool(body.get("stream"))
    excluded = exclude
    try:
        for attempt in (1, 2):
            node = await state.router.acquire(model, keepalive, excluded)
            try:
                response = await _send(state, node, path, body, stream)
            except _Retryable as failure:
                state.router.release(node, model)
                if attempt == 2 or failure.final:
                    raise failure.error from None
                log.warning("retrying on another node: %s", failure.error.message)
                excluded = excluded | {node.name}
                continue
            except BaseException:  # the client went away while the node was answering
                state.router.release(node, model)
                raise
            return Upstream(state, node, model, dialect, response, started)
    except ApiError as err:
        raise _count(state, label, dialect, err) from None
    raise AssertionError("unreachable")


class _Retryable(Exception):
    def __init__(self, error: ApiError, final: bool = False) -> None:
        self.error, self.final = error, final


async def _send(
    state: State, node: Node, path: str, body: dict, stream: bool
) -> aiohttp.ClientResponse:
    cfg = state.config.upstream
    timeout = aiohttp.ClientTimeout(
        total=None if stream else cfg.request_timeout_seconds,
        sock_connect=cfg.connect_timeout_seconds,
        sock_read=cfg.stream_idle_timeout_seconds if stream else None,
    )
    try:
        response = await state.session.post(
            node.client.url(path), json=body, headers=node.client.headers, timeout=timeout
        )
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        definite = isinstance(exc, aiohttp.ClientConnectorError)
        record_failure(state, node, exc, definite)
        status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
        raise _Retryable(
            ApiError(status, f"node '{node.name}' failed: {describe_exc(exc)}")
        ) from exc
    if response.status == 200:
        return response
    raw = await response.read()
    response.release()
    err = openai_error_from_upstream(response.status, raw)
    if response.status < 500:
        raise _Retryable(err, final=True)
    if err.status == 500:
        err.status = 502
    raise _Retryable(err)


def record_failure(state: State, node: Node, exc: BaseException, definite: bool) -> None:
    """A node failed a request: count it (a refused connection marks it down at once)."""
    state.poller.failed(node, describe_exc(exc), definite)


def _count(state: State, model: str, dialect: str, err: ApiError) -> ApiError:
    state.metrics.requests.labels(model, "none", dialect, str(err.status)).inc()
    return err
