"""Server-sent events the way OpenAI clients read them: `data: {json}` frames, `[DONE]`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from cortex.common.wire import ApiError, openai_error_body
from neuron.api import shapes

_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class EventStream:
    def __init__(self) -> None:
        self.response = web.StreamResponse(headers=_HEADERS)

    async def open(self, request: web.Request) -> None:
        await self.response.prepare(request)

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        await self.response.write(b"data: " + data.encode() + b"\n\n")

    async def error(self, err: ApiError) -> None:
        """An error after the stream began: an error event the OpenAI SDK raises from."""
        await self.send(openai_error_body(err))

    async def done(self) -> None:
        await self.response.write(b"data: [DONE]\n\n")
        await self.response.write_eof()


async def relay_chunks(
    request: web.Request,
    kind: str,
    rid: str,
    model: str,
    choices: AsyncIterator[dict[str, Any]],
    usage: Callable[[], dict[str, int]] | None,
    continuous: bool = False,
) -> web.StreamResponse:
    """Send each choice as a `kind` chunk, then the usage chunk (when asked for) and
    [DONE]; a generation that fails midway ends with an error event instead of usage.

    `continuous` puts the usage so far in every chunk, so a client learns the prompt's
    token count from the first one (the gateway's Anthropic `message_start` needs it)."""
    stream = EventStream()
    await stream.open(request)
    try:
        async for choice in choices:
            extra = {} if usage is None else {"usage": usage() if continuous else None}
            await stream.send({**shapes.envelope(kind, rid, model, [choice]), **extra})
    except ApiError as err:
        await stream.error(err)
    else:
        if usage is not None:
            await stream.send({**shapes.envelope(kind, rid, model, []), "usage": usage()})
    await stream.done()
    return stream.response
