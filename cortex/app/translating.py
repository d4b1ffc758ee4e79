"""What the dialects that translate onto chat completions share: the node's whole answer as
a JSON object, its stream as chat chunks, and one pump from those chunks to a dialect's
events (each dialect brings its own `ChunkTranslator`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from cortex.app.upstream import Upstream
from cortex.common.sse import event_data
from cortex.common.wire import ApiError

# What a broken upstream connection raises while its body is read.
_UPSTREAM_FAULTS = (aiohttp.ClientError, asyncio.TimeoutError, ValueError)


def upstream_fault(upstream: Upstream, exc: BaseException) -> ApiError:
    """A node that broke off or garbled its answer: count it against the node, tell the client."""
    upstream.node_failed(exc)
    status = 504 if isinstance(exc, asyncio.TimeoutError) else 502
    return ApiError(status, f"node '{upstream.node.name}' failed while answering: {exc!r:.200}")


def json_object(upstream: Upstream, raw: bytes) -> dict[str, Any]:
    """A node's whole answer as a JSON object (a `read_whole` use)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise upstream_fault(upstream, exc) from exc
    if not isinstance(data, dict):
        raise ApiError(502, "upstream answered with something other than a JSON object")
    return data


def chat_choice(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(first choice, its message) of a whole chat completion; a 502 when there is none."""
    try:
        choice = data["choices"][0]
        return choice, choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ApiError(502, "upstream returned a chat completion without a choice") from None


async def chat_chunks(upstream: Upstream) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an OpenAI SSE body; ApiError if it breaks off before `[DONE]`."""
    try:
        async for events in upstream.events():
            for event in events:
                data = event_data(event)
                if data == b"[DONE]":
                    return
                if data:
                    yield json.loads(data)
    except _UPSTREAM_FAULTS as exc:
        raise upstream_fault(upstream, exc) from exc
    raise ApiError(502, f"node '{upstream.node.name}' ended the stream before it was complete")


class ChunkTranslator:
    """A dialect's stateful translator of chat chunks into its own stream events: `feed`
    walks each chunk's parts into the hooks a dialect defines, in the order the neuron
    sends them (reasoning, text, tool-call deltas, the finish)."""

    _usage: dict[str, Any] | None = None

    @property
    def openai_usage(self) -> dict[str, Any] | None:
        """The upstream's OpenAI usage, once it has been seen."""
        return self._usage

    @property
    def has_content(self) -> bool:  # the first token has arrived
        raise NotImplementedError

    def feed(self, chunk: dict[str, Any]) -> bytes:
        """Events for one `chat.completion.chunk`."""
        if isinstance(chunk.get("error"), dict):
            raise ApiError(502, str(chunk["error"].get("message") or "upstream error"))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        out = [self._start()]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(self._reasoning(delta["reasoning_content"]))
            if delta.get("content"):
                out.append(self._text(delta["content"]))
            for call in delta.get("tool_calls") or []:
                out.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self._finished(choice)
        return b"".join(out)

    def finish(self) -> bytes:  # the closing events of a clean end
        raise NotImplementedError

    def fail(self, err: ApiError) -> bytes:  # the events that end a broken stream
        raise NotImplementedError

    def _start(self) -> bytes:  # the opening events, once
        raise NotImplementedError

    def _reasoning(self, text: str) -> bytes:
        raise NotImplementedError

    def _text(self, text: str) -> bytes:
        raise NotImplementedError

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _finished(self, choice: dict[str, Any]) -> None:
        raise NotImplementedError


async def translate_chunks(
    upstream: Upstream,
    response: web.StreamResponse,
    translator: ChunkTranslator,
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Relay the node's chat chunks through `translator` into the client's stream; True when
    it ended cleanly, False when the node failed and `translator.fail` ended it.
    `before_end` runs once the answer is whole, before its closing events go out (the
    Responses dialect stores it there, so the client's next turn finds it)."""
    first_token_at = None
    try:
        async for chunk in chat_chunks(upstream):
            events = translator.feed(chunk)
            if first_token_at is None and translator.has_content:
                first_token_at = time.monotonic()
            await response.write(events)
        closing = translator.finish()
        if before_end is not None:
            await before_end()
        await response.write(closing)
        upstream.complete = True
        return True
    except ApiError as err:
        upstream.code = err.status
        await response.write(translator.fail(err))
        return False
    finally:
        upstream.record_usage(translator.openai_usage, first_token_at)
