"""An open 200 answer from a neuron: its events, the in-flight slot it holds, its metrics.

Leaving `async with upstream` releases the connection and the in-flight slot, notes
the outcome on the request's record (counted once by the middleware) and observes
the latency and token metrics; an exception escaping it is a 502 (499 when the
client went away), and a caller that ends the response with an error itself sets
`upstream.code`. `upstream.record(usage, first_token_at)` reports the OpenAI usage
object and the `time.monotonic()` of the first token (TTFT counts from arrival).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from cortex.app.gateway import Gateway, RequestRecord
from cortex.common.sse import EventSplitter
from cortex.fleet.client import describe_exc
from cortex.fleet.nodes import Node


class Upstream:
    """An open 200 answer from a neuron, holding one in-flight slot until closed."""

    def __init__(
        self,
        gateway: Gateway,
        node: Node,
        model: str,
        record: RequestRecord,
        response: aiohttp.ClientResponse,
    ) -> None:
        self.gateway, self.node, self.model = gateway, node, model
        self.record, self.response = record, response
        self.code = 200
        self._usage: dict[str, Any] | None = None
        self._first_token_at: float | None = None

    def record_usage(self, usage: dict[str, Any] | None, first_token_at: float | None) -> None:
        if usage is not None:
            self._usage = usage
        if first_token_at is not None and self._first_token_at is None:
            self._first_token_at = first_token_at

    def events(self) -> Events:
        """The answer's SSE events, whole, as they arrive (one network read's worth at a
        time, so a relay can write them in one go)."""
        return Events(self.response.content)

    def node_failed(self, exc: BaseException) -> None:
        """The node broke off or garbled its answer: count it against the node."""
        node_failed(self.gateway, self.node, exc, definite=False)

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.response.release()
        self.node.release(self.model)
        if exc_type is not None:
            gone = issubclass(exc_type, (asyncio.CancelledError, ConnectionResetError))
            self.code = 499 if gone else 502
        self.record.node, self.record.code = self.node.name, self.code
        self._observe()

    def _observe(self) -> None:
        m, node, model, dialect = (
            self.gateway.metrics,
            self.node.name,
            self.model,
            self.record.dialect,
        )
        end = time.monotonic()
        started = self.record.started
        m.child(m.duration, model, node, dialect).observe(end - started)
        first = self._first_token_at
        if first is not None:
            m.child(m.ttft, model, node, dialect).observe(max(0.0, first - started))
        usage = self._usage or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            m.child(m.tokens, model, node, "prompt").inc(prompt)
        if isinstance(completion, int):
            m.child(m.tokens, model, node, "completion").inc(completion)
            if first is not None and completion > 1 and end > first:
                rate = (completion - 1) / (end - first)
                m.child(m.tokens_per_second, model, node).observe(rate)


class Events:
    """Async iterator over lists of whole SSE events (a plain class, not an async
    generator: a stream's every chunk passes through here, so the layer is kept thin)."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._read = content.readany
        self._splitter = EventSplitter()

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> list[bytes]:
        while True:
            chunk = await self._read()
            if not chunk:
                raise StopAsyncIteration
            events = self._splitter.feed(chunk)
            if events:
                return events


def node_failed(gateway: Gateway, node: Node, exc: BaseException, definite: bool) -> None:
    """A node failed a request: count it (a refused connection marks it down at once)."""
    gateway.poller.failed(node, describe_exc(exc), definite)
