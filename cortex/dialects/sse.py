"""Server-sent events on both sides of the gateway: split an upstream byte stream into
whole events (so each is relayed untouched, in one write), open a client stream, and
relay a streamed answer the same way for every dialect."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cortex.proxy import Upstream, open_upstream
from cortex.wire import ApiError

KEEPALIVE = b": keepalive\n\n"


class EventSplitter:
    """Feed raw bytes; get back complete events, each ending with its blank line."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._buffer = events.pop()
        return [event + b"\n\n" for event in events if event]


def event_data(event: bytes) -> bytes:
    """The joined `data:` lines of one event (empty for comments)."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)


def encode(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def open_stream(
    request: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """A prepared text/event-stream response with buffering disabled along the way."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    return response


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
