"""Streamed answers, the same way for every dialect: route the request, keep the client
alive while a cold load is awaited, then let the dialect's pump relay the node's events;
and, for the dialects that translate, the node's answer read as JSON or as chat chunks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from cortex.app.proxy import Upstream, open_upstream, record_failure
from cortex.common.sse import EventSplitter, event_data, open_stream
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


# What a broken upstream connection raises while its body is read.
_UPSTREAM_FAULTS = (aiohttp.ClientError, asyncio.TimeoutError, ValueError)


def upstream_fault(upstream: Upstream, exc: BaseException) -> ApiError:
    """A node that broke off or garbled its answer: count it against the node, tell the client."""
    record_failure(upstream.state, upstream.node, exc, definite=False)
    status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
    return ApiError(status, f"node '{upstream.node.name}' failed while answering: {exc!r:.200}")


def json_object(upstream: Upstream, raw: bytes) -> dict[str, Any]:
    """A node's whole answer as a JSON object (a translating dialect's `read_whole` use)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise upstream_fault(upstream, exc) from exc
    if not isinstance(data, dict):
        raise ApiError(502, "upstream answered with something other than a JSON object")
    return data


async def chat_chunks(upstream: Upstream) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an OpenAI SSE body; ApiError if it breaks off before `[DONE]`."""
    splitter = EventSplitter()
    try:
        async for raw in upstream.response.content.iter_any():
            for event in splitter.feed(raw):
                data = event_data(event)
                if data == b"[DONE]":
                    return
                if data:
                    yield json.loads(data)
    except _UPSTREAM_FAULTS as exc:
        raise upstream_fault(upstream, exc) from exc
    raise ApiError(502, f"node '{upstream.node.name}' ended the stream before it was complete")


def chat_choice(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(first choice, its message) of a whole chat completion; a 502 when there is none."""
    try:
        choice = data["choices"][0]
        return choice, choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ApiError(502, "upstream returned a chat completion without a choice") from None


class ChunkTranslator(Protocol):
    """A dialect's stateful translator of chat chunks into its own stream events."""

    @property
    def has_content(self) -> bool: ...  # the first token has arrived

    @property
    def openai_usage(self) -> dict[str, Any] | None: ...

    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...  # the closing events of a clean end

    def fail(self, err: ApiError) -> bytes: ...  # the events that end a broken stream


async def translate_chunks(
    upstream: Upstream, response: web.StreamResponse, translator: ChunkTranslator
) -> bool:
    """Relay the node's chat chunks through `translator` into the client's stream; True when
    it ended cleanly, False when the node failed and `translator.fail` ended it."""
    first_token_at = None
    try:
        async for chunk in chat_chunks(upstream):
            events = translator.feed(chunk)
            if first_token_at is None and translator.has_content:
                first_token_at = time.monotonic()
            await response.write(events)
        await response.write(translator.finish())
        return True
    except ApiError as err:
        upstream.code = err.status
        await response.write(translator.fail(err))
        return False
    finally:
        upstream.record(translator.openai_usage, first_token_at)
