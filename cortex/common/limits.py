"""What each daemon's HTTP server allows a client: how deep its JSON, how long it may
take to send a request, and how many connections it may hold.

aiohttp's keep-alive timer runs from a connection's opening (and from the end of each
answer) until the next request's head is complete, so passing the head deadline as
`keepalive_timeout` closes a connection that trickles its headers. The body deadline
is applied where the body is read (`read_body`); the connection cap where aiohttp
registers each new connection.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from aiohttp import web

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # pragma: no cover - aiohttp brings async-timeout before 3.11
    from async_timeout import timeout as deadline

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 64
BODY_TIMEOUT = web.AppKey("cortex.body_read_timeout_seconds", float)
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def server_limits_problem(section: Any) -> tuple[str, str, str] | None:
    """The config check both daemons share for their client limits, as (key, expected, got)."""
    for key in ("header_read_timeout_seconds", "body_read_timeout_seconds"):
        if getattr(section, key) <= 0:
            return key, "a positive number of seconds", str(getattr(section, key))
    if section.max_connections < 1:
        return "max_connections", "at least 1", str(section.max_connections)
    return None


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit` (templates and encoders recurse)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the app's body deadline; a client too slow is cut off."""
    if request.content.is_eof():  # all of it came with the head: nothing to wait for
        return await request.read()
    timeout = request.app.get(BODY_TIMEOUT)
    try:
        # a deadline on this task, not wait_for's: that would start a task per request
        async with deadline(timeout):
            return await request.read()
    except asyncio.TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(f"request body not received within {timeout} s") from None


def cap_connections(runner: web.AppRunner, limit: int) -> None:
    """Refuse (503, closed) connections beyond `limit` held at once by the runner's server."""
    server = runner.server
    if server is None:
        raise RuntimeError("cap_connections needs a runner that is set up")
    register = server.connection_made

    def connection_made(handler: Any, transport: Any) -> None:
        register(handler, transport)
        if len(server.connections) > limit:
            log.warning("refusing a connection: %d are open (the limit)", limit)
            transport.write(_BUSY)
            transport.close()

    server.connection_made = connection_made  # type: ignore[method-assign]


async def guarded_runner(
    app: web.Application, header_timeout: float, max_connections: int
) -> web.AppRunner:
    """A set-up runner for either daemon: handlers cancelled when their client goes, a
    deadline for each request head (aiohttp's keep-alive timeout runs until it is complete),
    and the connection cap."""
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, keepalive_timeout=header_timeout
    )
    await runner.setup()
    cap_connections(runner, max_connections)
    return runner
