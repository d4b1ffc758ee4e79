"""The Anthropic dialect's HTTP surface: `POST /v1/messages` and `/v1/messages/count_tokens`.

Requests are translated to the neuron's OpenAI dialect and routed like any other:
non-streamed ones through `cortex.app.proxy.read_whole` (a node that breaks off while
answering is retried once elsewhere), streams through `cortex.app.relay.open_relay`.
An ApiError raised here reaches the client as Anthropic's error envelope (the gateway
middleware picks the dialect by path); once a stream has begun it becomes an `error`
event instead.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cortex.app.proxy import read_whole
from cortex.app.relay import open_relay
from cortex.app.translating import json_object, translate_chunks
from cortex.app.upstream import Upstream
from cortex.common.wire import ApiError, read_json_object
from cortex.dialects.anthropic.request import to_openai_request, to_tokenize_request
from cortex.dialects.anthropic.response import from_openai_response
from cortex.dialects.anthropic.stream import PING, AnthropicStream, error_event

CHAT_PATH = "/v1/chat/completions"
TOKENIZE_PATH = "/tokenize"


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)


async def messages(request: web.Request) -> web.StreamResponse:
    upstream_body = to_openai_request(await read_json_object(request))
    stops: list[str] = upstream_body.get("stop", [])
    if upstream_body.get("stream"):
        return await _stream(request, upstream_body, stops)

    def answer(upstream: Upstream, raw: bytes) -> web.Response:
        data = json_object(upstream, raw)
        upstream.record_usage(data.get("usage"), None)
        return web.json_response(from_openai_response(data, upstream.model, stops))

    return await read_whole(request, upstream_body, path=CHAT_PATH, dialect="anthropic", use=answer)


async def count_tokens(request: web.Request) -> web.Response:
    tokenize_body = to_tokenize_request(await read_json_object(request))
    data = await read_whole(
        request, tokenize_body, path=TOKENIZE_PATH, dialect="anthropic", use=json_object
    )
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        raise ApiError(502, f"upstream returned a token count that is not an integer: {count!r}")
    return web.json_response({"input_tokens": count})


async def _stream(
    request: web.Request, upstream_body: dict[str, Any], stops: list[str]
) -> web.StreamResponse:
    # Pings while a cold load runs keep proxies and clients from timing out.
    relay = await open_relay(
        request,
        upstream_body,
        path=CHAT_PATH,
        dialect="anthropic",
        ping=PING,
        error_event=error_event,
    )
    if relay.upstream is not None:
        async with relay.upstream as upstream:
            translator = AnthropicStream(upstream.model, stops)
            await translate_chunks(upstream, relay.response, translator)
    return relay.response
