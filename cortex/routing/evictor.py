"""Background upkeep after each poll: pinned models kept loaded, idle unload, defrag.

Eviction to make room happens in `Lifecycle` (before a load); this module holds the
policies that run on their own clock.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cortex.common.wire import ApiError
from cortex.config import CortexConfig
from cortex.fleet.nodes import Fleet, Node
from cortex.routing.catalogue import Catalogue
from cortex.routing.lifecycle import Lifecycle, spawn

log = logging.getLogger("cortex.routing.evictor")


class Evictor:
    def __init__(
        self, fleet: Fleet, catalogue: Catalogue, lifecycle: Lifecycle, config: CortexConfig
    ) -> None:
        self.fleet, self.catalogue, self.lifecycle, self.config = (
            fleet,
            catalogue,
            lifecycle,
            config,
        )
        self._restarts: dict[str, asyncio.Task] = {}

    async def round(self) -> None:
        self.keep_pinned()
        await self.unload_idle()
        self.defrag()

    def keep_pinned(self) -> None:
        """Start loads for pinned models missing from their node (after a restart, say)."""
        for node in self.fleet.routable():
            for profile in self.catalogue.profiles.values():
                if node.name in profile.pinned_on and profile.model_id not in node.models:
                    try:
                        spawn(_logged(self.lifecycle.load_on(node, profile), node, profile.id))
                    except ApiError as err:
                        log.warning("pinned %s cannot load on %s: %s", profile.id, node.name, err)

    async def unload_idle(self) -> None:
        idle = self.config.eviction.idle_unload_seconds
        if idle <= 0:
            return
        await self.lifecycle.shared.exchange()  # the other gateways' requests count too
        now = time.time()
        for node in self.fleet.routable():
            for model_id, entry in list(node.models.items()):
                if (
                    entry.status == "ready"
                    and not self.catalogue.pinned(model_id, node.name)
                    and not node.busy(model_id)
                    and now - node.idle_since(model_id) >= idle
                ):
                    try:
                        await self.lifecycle.unload(node, model_id, reason="idle")
                    except ApiError as err:
                        log.warning("idle unload of %s on %s failed: %s", model_id, node.name, err)

    def defrag(self) -> None:
        """Drain and restart nodes that went through `defrag_after_cycles` unloads."""
        limit = self.config.eviction.defrag_after_cycles
        for node in self.fleet.routable():
            if limit > 0 and node.cycles >= limit and node.name not in self._restarts:
                task = spawn(self._drain_and_restart(node))
                self._restarts[node.name] = task
                task.add_done_callback(lambda _, name=node.name: self._restarts.pop(name, None))

    async def _drain_and_restart(self, node: Node) -> None:
        log.info("defragmenting %s after %d load/unload cycles", node.name, node.cycles)
        node.begin_drain()
        restarted = False
        try:
            deadline = time.monotonic() + self.config.upstream.request_timeout_seconds
            while node.total_inflight() and time.monotonic() < deadline:
                await self.fleet.wait_change(1.0)
            await node.client.restart(self.config.upstream.connect_timeout_seconds * 4)
            restarted = True
        except ApiError as err:
            log.warning("restart of %s failed: %s", node.name, err)
        finally:
            node.end_drain(restarted)


async def _logged(load, node: Node, model: str) -> None:
    try:
        await load
    except ApiError as err:
        log.warning("pinned %s failed to load on %s: %s", model, node.name, err)
