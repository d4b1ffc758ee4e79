"""Server-sent events framing on both sides: split an upstream byte stream into whole
events (so each is relayed untouched, in one write), encode events, and open a client
stream. Orchestrating a streamed answer is the relay's job (`cortex.app.relay`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

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
