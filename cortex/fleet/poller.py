"""Poll every neuron's /health and /models (and /discovery when it restarted).

A node is marked down after `unhealthy_after` consecutive failures (a refused
connection from the proxy counts as proof at once); one good answer brings it back.
After each round the evictor gets its turn (pinned reloads, idle unloads, defrag).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from cortex.config import PollerSection
from cortex.fleet.client import describe_exc
from cortex.fleet.nodes import Fleet, Node, NodeStatus

log = logging.getLogger("cortex.fleet.poller")

# A neuron's /health status → the node's status (anything else: still starting).
_STATUSES: dict[str, NodeStatus] = {"ready": "up", "starting": "starting", "draining": "draining"}


class Poller:
    def __init__(
        self, fleet: Fleet, config: PollerSection, pending: Callable[[str], list[str]]
    ) -> None:
        self.fleet, self.config = fleet, config
        self.pending = pending  # model ids whose load on the named node is in flight

    async def run(self, after_round: Callable[[], Awaitable[None]]) -> None:
        while True:
            await self.poll_all()
            try:
                await after_round()
            except Exception:
                log.exception("evictor round failed")
            await asyncio.sleep(self.config.interval_seconds)

    async def poll_all(self) -> None:
        await asyncio.gather(*(self.poll(node) for node in self.fleet))
        self.fleet.notify()

    async def poll(self, node: Node) -> None:
        timeout = self.config.timeout_seconds
        try:
            health = await node.client.get("/health", timeout)
            asked = time.time()  # the running counts below are no older than this
            models = await node.client.get("/models", timeout)
            restarted = node.status in ("unknown", "down") or _uptime(health) < node.uptime
            if restarted or not node.discovery:
                node.discovered(await node.client.get("/discovery", timeout))
        except Exception as exc:  # any failure to answer sensibly counts against the node
            self.failed(node, describe_exc(exc), definite=False)
            return
        if restarted and node.status != "unknown":
            log.info("node %s is back", node.name)
            node.restarted()
        node.mark_up(_STATUSES.get(str(health.get("status")), "starting"), health, _uptime(health))
        node.apply_models(models, asked, self.pending(node.name))

    def failed(self, node: Node, reason: str, definite: bool) -> None:
        """Count a failure; mark the node down at the threshold (or at once if definite)."""
        node.count_failure(reason)
        if node.status != "down" and (definite or node.failures >= self.config.unhealthy_after):
            log.warning("node %s is down: %s", node.name, reason)
            node.mark_down()


def _uptime(health: dict) -> float:
    value = health.get("uptime_seconds")
    return float(value) if isinstance(value, (int, float)) else 0.0
