"""Streamed answers, the same way for every dialect: route the request, keep the client
alive while a cold load is awaited, then let the dialect's pump relay the node's events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cortex.app.proxy import Upstream, open_upstream
from cortex.common.sse import open_stream
from cortex.common.wire import ApiError


async def relay_stream(
    request: web.Request,
    body: dict[str, Any],
    *,
    path: str,
    dialect: str,
    ping: bytes,
    error_event: Callable[[ApiError], bytes],
    pump: Callable[[Upstream, web.StreamResponse], Awaitable[None]],
    node_header: str | None = None,
) -> web.StreamResponse:
    """Route `body` and let `pump` relay the answer into the client's stream.

    The stream opens lazily: at the first `ping` while a cold load is awaited (so proxies
    and clients do not time out), else once a node answers (then with `node_header`
    naming it). A routing error after the stream opened ends it with `error_event`.
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
        return response
    async with upstream:
        headers = {node_header: upstream.node.name} if node_header else None
        response = response or await open_stream(request, headers)
        await pump(upstream, response)
    return response
