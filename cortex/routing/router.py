"""Pick the node for a request: loaded → least in-flight; loading → wait; else cold-load.

Waiting is bounded twice: at most `routing.max_waiting` requests wait per model (the
rest get 429), and none waits longer than `routing.max_wait_seconds` (503). Both
carry Retry-After. A streaming client gets `keepalive()` calls while it waits. A
waiter whose client goes away is cancelled by aiohttp and leaves the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from cortex.common.wire import ApiError
from cortex.config import RoutingSection
from cortex.fleet.nodes import Fleet, Node
from cortex.metrics import Metrics
from cortex.routing.affinity import Affinity
from cortex.routing.catalogue import Catalogue
from cortex.routing.lifecycle import Lifecycle
from cortex.state.shared import Shared

Keepalive = Callable[[], Awaitable[None]]
Conversation = Callable[[], str | None]  # the request's conversation key, computed on demand


class Router:
    def __init__(
        self,
        fleet: Fleet,
        catalogue: Catalogue,
        lifecycle: Lifecycle,
        metrics: Metrics,
        config: RoutingSection,
        shared: Shared,
    ) -> None:
        self.fleet, self.catalogue, self.lifecycle = fleet, catalogue, lifecycle
        self.metrics, self.config, self.shared = metrics, config, shared
        self.waiting: dict[str, int] = {}
        self.affinity = Affinity(config.cache_affinity_margin)

    def known(self, model_id: str) -> bool:
        """In the catalogue, or held by some node (even one that is down now)."""
        return self.catalogue.profile(model_id) is not None or any(
            model_id in node.models for node in self.fleet
        )

    def _take(self, node: Node, model_id: str) -> Node:
        node.take(model_id)
        self.shared.changed()  # the other gateways hear of it now, not at the next tick
        return node

    async def acquire(
        self,
        model_id: str,
        keepalive: Keepalive | None = None,
        exclude: frozenset[str] = frozenset(),
        conversation: Conversation | None = None,
    ) -> Node:
        """A node serving the model, already counted in flight (`node.release(model_id)`
        when done); raises ApiError.

        `conversation()` (cortex.routing.affinity.conversation_key) sends a conversation
        back to the node that served it while that node is not much busier than others;
        it is not asked in a fleet of one node.
        """
        node = self._pick(model_id, exclude, conversation)
        if node is not None:
            return self._take(node, model_id)
        if not self.known(model_id):
            raise ApiError(
                404, f"The model '{model_id}' does not exist", "model", "model_not_found"
            )
        if self.waiting.get(model_id, 0) >= self.config.max_waiting:
            raise ApiError(429, f"too many requests waiting for model '{model_id}'", retry_after=5)
        self.waiting[model_id] = self.waiting.get(model_id, 0) + 1
        started = time.monotonic()
        try:
            return await self._wait(model_id, keepalive, exclude, started, conversation)
        finally:
            self.waiting[model_id] -= 1
            self.metrics.queue_wait.labels(model_id).observe(time.monotonic() - started)

    def _pick(
        self, model_id: str, exclude: frozenset[str], conversation: Conversation | None
    ) -> Node | None:
        holders = [n for n in self.fleet.holders(model_id) if n.name not in exclude]
        # A fleet of one never chooses: no key needed. With more, a conversation is
        # remembered even while one node holds the model, so it stays where it moved.
        if not holders or conversation is None or len(self.fleet.nodes) < 2:
            return holders[0] if holders else None
        key = conversation()
        if key is None:
            return holders[0]
        node, outcome = self.affinity.choose(model_id, key, holders)
        self.metrics.child(self.metrics.affinity, model_id, outcome).inc()
        return node

    async def _wait(
        self,
        model_id: str,
        keepalive: Keepalive | None,
        exclude: frozenset[str],
        started: float,
        conversation: Conversation | None,
    ) -> Node:
        deadline = started + self.config.max_wait_seconds
        next_ping = started + self.config.keepalive_seconds
        profile = self.catalogue.profile(model_id)
        blocked = False  # the last cold load found no room until requests finish
        while True:
            node = self._pick(model_id, exclude, conversation)
            if node is not None:
                return self._take(node, model_id)
            tasks = self.lifecycle.loading(model_id)
            if not tasks and profile is not None and not blocked:
                tasks = [self.lifecycle.ensure_loaded(profile, exclude)]
            if not tasks and profile is None and not self._coming(model_id, exclude):
                raise ApiError(
                    503, f"model '{model_id}' is not loaded on any healthy node", retry_after=10
                )
            now = time.monotonic()
            if now >= deadline:
                raise ApiError(
                    503,
                    f"model '{model_id}' is not available yet (waited {now - started:.0f}s)",
                    retry_after=max(5.0, self.config.max_wait_seconds / 4),
                )
            await self._sleep(tasks, min(deadline, next_ping) - now)
            blocked = any(_outcome(task) is None for task in tasks if task.done())
            if time.monotonic() >= next_ping:
                if keepalive is not None:
                    await keepalive()
                next_ping = time.monotonic() + self.config.keepalive_seconds

    def _coming(self, model_id: str, exclude: frozenset[str]) -> bool:
        """A model outside the catalogue can only be waited for while some node loads it."""
        return any(
            node.status in ("up", "starting")
            and node.name not in exclude
            and node.models.get(model_id) is not None
            and node.models[model_id].status in ("loading", "ready")
            for node in self.fleet
        )

    async def _sleep(self, tasks: list[asyncio.Task], timeout: float) -> None:
        """Until a load finishes, the fleet changes, or the timeout passes."""
        change = asyncio.ensure_future(self.fleet.wait_change(timeout))
        try:
            await asyncio.wait([change, *tasks], timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            change.cancel()


def _outcome(task: asyncio.Task) -> str | None:
    """A finished load's node name (None: wait for room); its failure, raised afresh."""
    if task.cancelled():
        raise ApiError(503, "the model load was cancelled", retry_after=5)
    exc = task.exception()
    if isinstance(exc, ApiError):
        raise dataclasses.replace(exc)
    if exc is not None:
        raise ApiError(502, f"model load failed: {exc}")
    return task.result()
