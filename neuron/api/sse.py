"""Server-sent events the way OpenAI clients read them: `data: {json}` frames, `[DONE]`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cortex.wire import ApiError, openai_error_body

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
