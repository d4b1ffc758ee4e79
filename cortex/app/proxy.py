"""The proxy core every dialect calls: route a request body to a neuron and open the answer.

Stable interface (used by cortex.app.relay and the dialects' routes)::

    upstream = await open_upstream(request, body, path="/v1/chat/completions",
                                   dialect="anthropic", keepalive=ping)
    async with upstream:  # cortex.app.upstream.Upstream
        ...  # read upstream.response (an aiohttp.ClientResponse with status 200)
        upstream.record_usage(usage, first_token_at)

    answer = await read_whole(request, body, path=..., dialect=..., use=make_answer)

`open_upstream` resolves aliases (rewriting `body["model"]`), routes (waiting for or
cold-loading the model, calling `keepalive()` every `routing.keepalive_seconds`
while it waits), sends the body, and retries on another node when the first fails
before answering for a fault of its own: a connection error, a 502/503/504, or no
response head within `upstream.first_byte_timeout_seconds` of the node being chosen
(that node is then marked suspect until the poller hears from it), or the node being
marked down or suspect while the request waits for it. A 4xx or a 500 is
relayed, never retried. A request moves at most once in all
(`RequestRecord.take_retry`), whichever of these steps spends it (`exclude` names
nodes not to use, for a caller's own retry).
`raw`, the client's own bytes of `body`, is sent as is when aliasing leaves the
model unchanged, which saves serialising the body again.
It raises `cortex.common.wire.ApiError` for routing and upstream
errors (an upstream error body is mapped with `openai_error_from_upstream`); the
request's record (`cortex.app.gateway.RequestRecord`) gets the model and the outcome.
`read_whole` is that for a non-streamed answer: it reads the whole body, retries
on another node when the first breaks off while answering (if the one move is left),
and calls `use(upstream, body_bytes)` inside the `async with` so what it records counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp import web

from cortex.app.first_byte import NodeLost, first_byte
from cortex.app.gateway import Gateway, gateway_of, record_of
from cortex.app.upstream import Upstream, node_failed
from cortex.common.wire import CLIENT_BODY, ApiError, openai_error_from_upstream
from cortex.fleet.client import describe_exc
from cortex.fleet.nodes import Node
from cortex.routing.affinity import conversation_key

__all__ = ["open_upstream", "read_whole"]
log = logging.getLogger("cortex.app.proxy")
T = TypeVar("T")
# Answers that say the node cannot serve now (overloaded, draining, failed device, its
# own upstream): another replica may. A 4xx or a 500 may be the input's fault: never moved.
_NODE_FAULTS = frozenset({502, 503, 504})


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
    gateway, record = gateway_of(request), record_of(request)
    record.dialect, record.node, record.code = dialect, "none", None
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "`model` must be a non-empty string", "model")
    model = gateway.catalogue.resolve(name)
    if model != name or raw is None:
        body["model"] = model
        raw = json.dumps(body).encode()
    record.model = model if gateway.router.known(model) else "unknown"
    stream = bool(body.get("stream"))
    excluded = exclude
    client_body = request.get(CLIENT_BODY, body)

    def conversation() -> str | None:  # a digest is costly: only where a choice may be made
        return conversation_key(client_body, request.headers)

    try:
        while True:
            node = await gateway.router.acquire(model, keepalive, excluded, conversation)
            try:
                response = await _send(gateway, node, path, raw, stream)
            except _NodeFault as failure:
                node.release(model)
                if not record.take_retry():
                    raise failure.error from None
                log.warning("retrying on another node: %s", failure.error.message)
                excluded = excluded | {node.name}
                continue
            except BaseException:  # the client went away while the node was answering
                node.release(model)
                raise
            return Upstream(gateway, node, model, record, response)
    except ApiError as err:
        record.code = err.status
        raise


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
                upstream.node_failed(exc)
                upstream.code = 502
                if not upstream.record.take_retry():
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
    gateway: Gateway, node: Node, path: str, body: bytes, stream: bool
) -> aiohttp.ClientResponse:
    cfg = gateway.config.upstream
    timeout = _timeout(
        stream,
        cfg.request_timeout_seconds,
        cfg.connect_timeout_seconds,
        cfg.stream_idle_timeout_seconds,
    )
    headers = {**node.client.headers, "Content-Type": "application/json"}
    limit = cfg.first_byte_timeout_seconds
    try:
        async with first_byte(node, limit):  # on this task: wait_for would start one
            response = await gateway.session.post(
                node.client.url(path), data=body, headers=headers, timeout=timeout
            )
    except NodeLost as exc:  # the poller gave up on it meanwhile: move now, not at the deadline
        reason = f"marked {exc} before it answered"
        raise _NodeFault(ApiError(503, f"node '{node.name}' failed: {reason}")) from exc
    except aiohttp.ClientError as exc:  # aiohttp's own timeouts are ClientErrors too
        node_failed(gateway, node, exc, isinstance(exc, aiohttp.ClientConnectorError))
        raise _NodeFault(_failed(node, exc, 504 if isinstance(exc, TimeoutError) else 502)) from exc
    except asyncio.TimeoutError as exc:  # the first-byte deadline (before OSError, its base)
        reason = f"no response within first_byte_timeout_seconds ({limit:g} s)"
        node.mark_suspect(reason)
        raise _NodeFault(ApiError(504, f"node '{node.name}' failed: {reason}")) from exc
    except OSError as exc:
        node_failed(gateway, node, exc, definite=False)
        raise _NodeFault(_failed(node, exc, 502)) from exc
    if response.status == 200:
        return response
    raw = await response.read()
    response.release()
    err = openai_error_from_upstream(response.status, raw)
    if err.status == 500:  # an unhandled error on the node: perhaps this input's, not retried
        err = dataclasses.replace(err, status=502)
    elif err.status in _NODE_FAULTS:
        raise _NodeFault(err)
    raise err


def _failed(node: Node, exc: BaseException, status: int) -> ApiError:
    return ApiError(status, f"node '{node.name}' failed: {describe_exc(exc)}")
