"""The proxy core every dialect calls: route a request body to a neuron and open the answer.

Stable interface (used by cortex.dialects.openai.routes and cortex.dialects.anthropic.routes)::

    upstream = await open_upstream(request, body, path="/v1/chat/completions",
                                   dialect="anthropic", keepalive=ping)
    async with upstream:
        ...  # read upstream.response (an aiohttp.ClientResponse with status 200)
        upstream.record(usage, first_token_at)

    answer = await read_whole(request, body, path=..., dialect=..., use=make_answer)

`open_upstream` resolves aliases (rewriting `body["model"]`), routes (waiting for or
cold-loading the model, calling `keepalive()` every `routing.keepalive_seconds`
while it waits), sends the body, and retries on another node when the first fails
before answering for a fault of its own: a connection error, a 502/503/504, or no
response head within `upstream.first_byte_timeout_seconds` of the node being chosen
(that node is then marked suspect until the poller hears from it). A 4xx or a 500 is
relayed, never retried. A request moves at most once in all (`take_retry`), whichever
of these steps spends it (`exclude` names nodes not to use, for a caller's own retry).
`raw`, the client's own bytes of `body`, is sent as is when aliasing leaves the
model unchanged, which saves serialising the body again.
It raises `cortex.common.wire.ApiError` for routing and upstream
errors (an upstream error body is mapped with `openai_error_from_upstream`).
Leaving `async with upstream` releases the connection and the in-flight slot and
records the request metrics; an exception escaping it counts as 502 (499 when the
client went away), and a caller that ends the response with an error itself sets
`upstream.code`. `upstream.record(usage, first_token_at)` reports the OpenAI usage
object and the `time.monotonic()` of the first token (TTFT is measured from the
arrival of the request).
`read_whole` is that for a non-streamed answer: it reads the whole body, retries
on another node when the first breaks off while answering (if the one move is left), and calls
`use(upstream, body_bytes)` inside the `async with` so what it records counts.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from cortex.app.state import COUNTED, STARTED, State, state_of
from cortex.common.wire import ApiError, openai_error_from_upstream
from cortex.fleet.client import describe_exc
from cortex.fleet.nodes import Node

__all__ = ["Upstream", "open_upstream", "read_whole", "record_failure"]
log = logging.getLogger("cortex.app.proxy")
T = TypeVar("T")
# Answers that say the node cannot serve now (overloaded, draining, failed device, its
# own upstream): another replica may. A 4xx or a 500 may be the input's fault: never moved.
_NODE_FAULTS = frozenset({502, 503, 504})
# Set on a request once its one move to another node is spent.
RETRIED = "cortex.retried"


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
        m, node, model, dialect = self.state.metrics, self.node.name, self.model, self.dialect
        end = time.monotonic()
        m.child(m.requests, model, node, dialect, str(self.code)).inc()
        m.child(m.duration, model, node, dialect).observe(end - self.started)
        first = self._first_token_at
        if first is not None:
            m.child(m.ttft, model, node, dialect).observe(max(0.0, first - self.started))
        usage = self._usage or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            m.child(m.tokens, model, node, "prompt").inc(prompt)
        if isinstance(completion, int):
            m.child(m.tokens, model, node, "completion").inc(completion)
            if first is not None and completion > 1 and end > first:
                rate = (completion - 1) / (end - first)
                m.child(m.tokens_per_second, model, node).observe(rate)


async def open_upstream(
    request: web.Request,
    body: dict,
    *,
    path: str,
    dialect: str,
    keepalive: Callable[[], Awaitable[None]] | None = None,
    exclude: frozenset[str] = frozenset(),
    raw: bytes | None = None,
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
    if model != name or raw is None:
        body["model"] = model
        raw = json.dumps(body).encode()
    label = model if state.router.known(model) else "unknown"
    stream = bool(body.get("stream"))
    excluded = exclude
    try:
        while True:
            node = await state.router.acquire(model, keepalive, excluded)
            try:
                response = await _send(state, node, path, raw, stream)
            except _NodeFault as failure:
                state.router.release(node, model)
                if not take_retry(request):
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


def take_retry(request: web.Request) -> bool:
    """Whether this request may still move to another node: once, whatever failed."""
    if request.get(RETRIED):
        return False
    request[RETRIED] = True
    return True


class _NodeFault(Exception):
    """The node failed (not the request): the one retry elsewhere may be spent on it."""

    def __init__(self, error: ApiError) -> None:
        self.error = error


async def read_whole(
    request: web.Request,
    body: dict,
    *,
    path: str,
    dialect: str,
    use: Callable[[Upstream, bytes], T],
    raw: bytes | None = None,
) -> T:
    """A non-streamed answer: nothing reaches the client before the whole body, so a
    node that breaks off while answering is retried once on another."""
    excluded: frozenset[str] = frozenset()
    while True:
        upstream = await open_upstream(
            request, body, path=path, dialect=dialect, exclude=excluded, raw=raw
        )
        async with upstream:
            try:
                answer = await upstream.response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                record_failure(upstream.state, upstream.node, exc, definite=False)
                upstream.code = 502
                if not take_retry(request):
                    status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
                    reason = describe_exc(exc)
                    message = f"node '{upstream.node.name}' failed while answering: {reason}"
                    raise ApiError(status, message) from exc
                excluded = excluded | {upstream.node.name}
                raw = None  # `body` now names the resolved model, `raw` perhaps an alias
                continue
            return use(upstream, answer)


@functools.lru_cache(maxsize=8)
def _timeout(
    stream: bool, total: float, connect: float, idle: float | None
) -> aiohttp.ClientTimeout:
    """One timeout object per setting, not one per request."""
    return aiohttp.ClientTimeout(
        total=None if stream else total, sock_connect=connect, sock_read=idle if stream else None
    )


async def _send(
    state: State, node: Node, path: str, body: bytes, stream: bool
) -> aiohttp.ClientResponse:
    cfg = state.config.upstream
    timeout = _timeout(
        stream,
        cfg.request_timeout_seconds,
        cfg.connect_timeout_seconds,
        cfg.stream_idle_timeout_seconds,
    )
    headers = {**node.client.headers, "Content-Type": "application/json"}
    deadline = cfg.first_byte_timeout_seconds
    try:
        response = await asyncio.wait_for(
            state.session.post(node.client.url(path), data=body, headers=headers, timeout=timeout),
            deadline,
        )
    except (aiohttp.ClientError, OSError) as exc:  # aiohttp's own timeouts included
        record_failure(state, node, exc, isinstance(exc, aiohttp.ClientConnectorError))
        status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
        raise _NodeFault(
            ApiError(status, f"node '{node.name}' failed: {describe_exc(exc)}")
        ) from exc
    except asyncio.TimeoutError as exc:  # the first-byte deadline
        reason = f"no response within first_byte_timeout_seconds ({deadline:g} s)"
        node.mark_suspect(reason)
        state.fleet.notify()
        raise _NodeFault(ApiError(504, f"node '{node.name}' failed: {reason}")) from exc
    if response.status == 200:
        return response
    raw = await response.read()
    response.release()
    err = openai_error_from_upstream(response.status, raw)
    if err.status == 500:  # an unhandled error on the node: perhaps this input's, not retried
        err.status = 502
    elif err.status in _NODE_FAULTS:
        raise _NodeFault(err)
    raise err


def record_failure(state: State, node: Node, exc: BaseException, definite: bool) -> None:
    """A node failed a request: count it (a refused connection marks it down at once)."""
    state.poller.failed(node, describe_exc(exc), definite)


def _count(state: State, model: str, dialect: str, err: ApiError) -> ApiError:
    metrics = state.metrics
    metrics.child(metrics.requests, model, "none", dialect, str(err.status)).inc()
    return err
