"""OpenAI dialect: `/v1/chat/completions` and `/v1/completions`, relayed to a neuron as is.

The neuron speaks OpenAI too, so answers go back byte-for-byte: a non-streaming body
untouched (the client's request body too, unless an alias renames its model), a
stream event by event as it arrives. A node that breaks off a non-streamed answer
is retried once elsewhere (`cortex.app.proxy.read_whole`). The one edit: the gateway always
asks for usage on streams (for its metrics) and drops the usage-only chunk when the
client did not ask for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from cortex.app.proxy import read_whole
from cortex.app.relay import open_relay
from cortex.app.upstream import Upstream
from cortex.common.sse import KEEPALIVE, encode, event_data
from cortex.common.wire import ApiError, openai_error_body, read_json_object
from cortex.dialects.openai.capability import require_capability

# Which node answered (absent on a stream that began with keep-alives while waiting).
NODE_HEADER = "x-cortex-node"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty array", "messages")
    require_capability(request, body, "chat")
    return await relay(request, body, "/v1/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json_object(request)
    if not isinstance(body.get("prompt"), (str, list)):
        raise ApiError(400, "`prompt` must be a string or an array", "prompt")
    if body.get("suffix") is not None:
        require_capability(request, body, "fim")
    return await relay(request, body, "/v1/completions")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)


async def relay(
    request: web.Request,
    body: dict[str, Any],
    path: str,
    dialect: str = "openai",
    edited: bool = False,
) -> web.StreamResponse:
    """The node's answer to `body` on `path`, streamed when the body asks for it
    (`edited`: the body differs from the client's bytes)."""
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "`stream` must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "`stream_options` must be an object", "stream_options")
    if stream:
        wants_usage = bool((options or {}).get("include_usage"))
        return await _relay_stream(request, body, path, wants_usage, dialect)
    return await relay_whole(request, body, path, dialect, edited)


async def relay_whole(
    request: web.Request, body: dict[str, Any], path: str, dialect: str, edited: bool = False
) -> web.Response:
    """The node's whole JSON answer, byte for byte."""
    # aiohttp keeps the bytes `read_json_object` parsed
    raw = None if edited else await request.read()
    return await read_whole(request, body, path=path, dialect=dialect, use=_answer, raw=raw)


def _answer(upstream: Upstream, raw: bytes) -> web.Response:
    upstream.record_usage(_usage(raw), None)
    return web.Response(
        body=raw, content_type="application/json", headers={NODE_HEADER: upstream.node.name}
    )


async def _relay_stream(
    request: web.Request, body: dict[str, Any], path: str, wants_usage: bool, dialect: str
) -> web.StreamResponse:
    body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    relay = await open_relay(
        request,
        body,
        path=path,
        dialect=dialect,
        ping=KEEPALIVE,
        error_event=_error_event,
        node_header=NODE_HEADER,
    )
    if relay.upstream is not None:
        async with relay.upstream as upstream:
            await _pump(upstream, relay.response, wants_usage)
    return relay.response


def _error_event(err: ApiError) -> bytes:
    return encode(openai_error_body(err))


async def _pump(upstream: Upstream, response: web.StreamResponse, wants_usage: bool) -> None:
    """Relay the node's events as they are, noting the first token and the usage."""
    first_token_at: float | None = None
    usage: dict[str, Any] | None = None
    try:
        async for events in upstream.events():
            if upstream.complete:  # nothing follows [DONE] to the client
                continue
            out = []
            for event in events:
                # Only the events before the first token, and those with usage, are parsed.
                if first_token_at is None or b'"usage"' in event:
                    data = event_data(event)
                    if first_token_at is None and _has_token(data):
                        first_token_at = time.monotonic()
                    if b'"usage"' in data:
                        found, usage_only = _usage_chunk(data)
                        usage = found or usage
                        if usage_only and not wants_usage:
                            continue
                out.append(event)
            if out:
                # A client may hang up right after [DONE] (the openai SDK does): its answer
                # is complete, whatever the wait for the node's end of stream then meets.
                upstream.complete = out[-1].endswith(b"[DONE]\n\n")
                if upstream.complete:  # the last events and the stream's end in one send
                    await response.write_eof(b"".join(out))
                else:
                    await response.write(b"".join(out))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        upstream.node_failed(exc)
        timed_out = isinstance(exc, asyncio.TimeoutError)
        upstream.code = 504 if timed_out else 502
        reason = "stalled" if timed_out else "failed"
        err = ApiError(upstream.code, f"node '{upstream.node.name}' {reason} during the stream")
        if not upstream.complete:  # after [DONE] the client's stream is already closed
            await response.write(_error_event(err))
    finally:
        upstream.record_usage(usage, first_token_at)


def _has_token(data: bytes) -> bool:
    """Does this chunk carry generated text or a tool call (not just a role)?"""
    if not data.startswith(b"{"):
        return False
    try:
        choices = json.loads(data).get("choices") or []
    except (ValueError, AttributeError):
        return False
    for choice in choices:
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _usage_chunk(data: bytes) -> tuple[dict[str, Any] | None, bool]:
    """(usage, is the chunk usage-only) for a chunk that mentions usage."""
    try:
        payload = json.loads(data)
    except ValueError:
        return None, False
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None, False
    return usage, not payload.get("choices")


def _usage(raw: bytes) -> dict[str, Any] | None:
    try:
        usage = json.loads(raw).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None
