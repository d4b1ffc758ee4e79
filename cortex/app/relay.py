"""Streamed answers, the same way for every dialect: route the request, keep the client
alive while a cold load is awaited, then hand the dialect the client's stream and the
open upstream to iterate::

    relay = await open_relay(request, body, path=..., dialect=..., ping=PING,
                             error_event=error_event)
    if relay.upstream is not None:
        async with relay.upstream as upstream:
            async for events in upstream.events():
                await relay.response.write(translate(events))
    return relay.response
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cortex.app.proxy import open_upstream
from cortex.app.upstream import Upstream
from cortex.common.sse import open_stream
from cortex.common.wire import ApiError


@dataclass
class Relay:
    """The client's open event stream and the node's answer to relay into it."""

    response: web.StreamResponse
    upstream: Upstream | None  # None: routing failed after the stream opened (error event sent)


async def open_relay(
    request: web.Request,
    body: dict[str, Any],
    *,
    path: str,
    dialect: str,
    ping: bytes,
    error_event: Callable[[ApiError], bytes],
    node_header: str | None = None,
) -> Relay:
    """Route `body` and open the client's stream for its answer.

    The stream opens lazily: at the first `ping` while a cold load is awaited (so proxies
    and clients do not time out), else once a node answers (then with `node_header`
    naming it). A routing error after the stream opened ends it with `error_event`;
    before, it is raised (and answered with the dialect's error envelope).
    """
    response: web.StreamResponse | None = None

    async def keepalive() -> None:
        nonlocal response
        response = response or await open_stream(request)
        await response.write(ping)

    try:
        upstream = await open_upstream(
            request, body, path=path, dialect=dialect, keepalive=keepalive
        )
    except ApiError as err:
        if response is None:
            raise
        await response.write(error_event(err))
        return Relay(response, None)
    try:
        headers = {node_header: upstream.node.name} if node_header else None
        response = response or await open_stream(request, headers)
    except BaseException:
        async with upstream:  # releases the node, and notes the outcome
            raise
    return Relay(response, upstream)
