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
from cortex.dialects.anthropic.breakpoints import prefix_conversation
from cortex.dialects.anthropic.context_edits import apply_edits
from cortex.dialects.anthropic.errors import anthropic_error
from cortex.dialects.anthropic.options import thinking_display
from cortex.dialects.anthropic.request import (
    count_request,
    to_openai_request,
    to_tokenize_request,
)
from cortex.dialects.anthropic.response import from_openai_response
from cortex.dialects.anthropic.stream import PING, AnthropicStream, error_event

CHAT_PATH = "/v1/chat/completions"
TOKENIZE_PATH = "/tokenize"


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)


async def messages(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    upstream_body = to_openai_request(body)  # every field checked before any work is done

    async def count(edited: dict[str, Any]) -> int:
        return await _count(request, count_request(edited))

    try:
        body, applied = await apply_edits(body, count)
        if applied:  # an edit changed the history: the prompt is translated afresh
            upstream_body = to_openai_request(body)
        report = {"applied_edits": applied} if "context_management" in body else None
        turn = _Turn(upstream_body.get("stop", []), thinking_display(body), report)
        turn.breakpoint = await _breakpoint(request, body)
        if upstream_body.get("stream"):
            return await _stream(request, upstream_body, turn)
        return await read_whole(
            request, upstream_body, path=CHAT_PATH, dialect="anthropic", use=turn.answer
        )
    except ApiError as err:
        raise anthropic_error(err) from None


class _Turn:
    """What shapes the answer beyond the chat completion: stops, thinking display, edits."""

    def __init__(self, stops: list[str], show_thinking: bool, report: dict | None) -> None:
        self.stops, self.show_thinking, self.report = stops, show_thinking, report
        self.breakpoint: int | None = None  # the prompt's tokens up to its last cache_control

    def answer(self, upstream: Upstream, raw: bytes) -> web.Response:
        data = json_object(upstream, raw)
        upstream.record_usage(data.get("usage"), None)
        message = from_openai_response(
            data, upstream.model, self.stops, self.show_thinking, self.breakpoint
        )
        if self.report is not None:
            message["context_management"] = self.report
        return web.json_response(message)

    def translator(self, model: str) -> AnthropicStream:
        return AnthropicStream(model, self.stops, self.show_thinking, self.report, self.breakpoint)


async def count_tokens(request: web.Request) -> web.Response:
    return web.json_response(
        {"input_tokens": await _count(request, await read_json_object(request))}
    )


async def _count(request: web.Request, body: dict[str, Any]) -> int:
    """The prompt tokens of a `count_tokens` body, as the neuron renders it."""
    return _integer(await _tokenize(request, to_tokenize_request(body)), "count")


async def _breakpoint(request: web.Request, body: dict[str, Any]) -> int | None:
    """The prompt's tokens up to its last `cache_control` (cortex/dialects/anthropic/
    breakpoints.py), or None without one: then no `/tokenize` is sent."""
    prefix = prefix_conversation(body)
    if prefix is None:
        return None
    tokenize_body = {**to_tokenize_request(count_request(body)), "prefix": prefix}
    return _integer(await _tokenize(request, tokenize_body), "prefix_count")


async def _tokenize(request: web.Request, tokenize_body: dict[str, Any]) -> dict[str, Any]:
    return await read_whole(
        request, tokenize_body, path=TOKENIZE_PATH, dialect="anthropic", use=json_object
    )


def _integer(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(502, f"upstream returned a token {key} that is not an integer: {value!r}")
    return value


async def _stream(
    request: web.Request, upstream_body: dict[str, Any], turn: _Turn
) -> web.StreamResponse:
    # Pings while a cold load runs keep proxies and clients from timing out.
    relay = await open_relay(
        request,
        upstream_body,
        path=CHAT_PATH,
        dialect="anthropic",
        ping=PING,
        error_event=lambda err: error_event(anthropic_error(err)),
    )
    if relay.upstream is not None:
        async with relay.upstream as upstream:
            await translate_chunks(upstream, relay.response, turn.translator(upstream.model))
    return relay.response
