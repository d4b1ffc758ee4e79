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
from cortex.fleet.nodes import Fleet, ModelOnNode, Node
from cortex.metrics import Metrics

log = logging.getLogger("cortex.fleet.poller")

_STATES = {"ready": "up", "starting": "starting", "draining": "draining"}


class Poller:
    def __init__(
        self,
        fleet: Fleet,
        metrics: Metrics,
        config: PollerSection,
        pending: Callable[[str], list[str]],
    ) -> None:
        self.fleet, self.metrics, self.config = fleet, metrics, config
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
            restarted = node.state in ("unknown", "down") or _uptime(health) < node.uptime
            if restarted or not node.discovery:
                node.discovery = await node.client.get("/discovery", timeout)
        except Exception as exc:  # any failure to answer sensibly counts against the node
            self.failed(node, describe_exc(exc), definite=False)
            return
        if restarted and node.state != "unknown":
            log.info("node %s is back", node.name)
            node.last_used.clear()
            node.cycles = 0
        node.failures, node.last_error = 0, None
        node.health, node.uptime = health, _uptime(health)
        node.state = _STATES.get(str(health.get("status")), "starting")
        self._apply_models(node, models, asked)
        self.metrics.node_up.labels(node.name).set(1)

    def failed(self, node: Node, reason: str, definite: bool) -> None:
        """Count a failure; mark the node down at the threshold (or at once if definite)."""
        node.failures += 1
        node.last_error = reason
        if node.state != "down" and (definite or node.failures >= self.config.unhealthy_after):
            log.warning("node %s is down: %s", node.name, reason)
            node.state = "down"
            for model_id in node.models:
                self.metrics.model_loaded.labels(model_id, node.name).set(0)
            self.metrics.node_up.labels(node.name).set(0)
            self.fleet.notify()

    def _apply_models(self, node: Node, payload: dict, now: float) -> None:
        previous = node.models
        fresh = {}
        for item in payload.get("loaded") or []:
            entry = ModelOnNode.from_wire(item)
            entry.seen_at = now
            if previous.get(entry.id) and previous[entry.id].status == "unloading":
                entry.status = "unloading"
            fresh[entry.id] = entry
            node.last_used.setdefault(entry.id, now)  # idle counts from first sight
        for model_id in self.pending(node.name):
            fresh.setdefault(model_id, previous.get(model_id) or ModelOnNode(model_id, "loading"))
        node.models = fresh
        node.available = list(payload.get("available") or [])
        for model_id in set(previous) | set(fresh):
            ready = model_id in fresh and fresh[model_id].status == "ready"
            self.metrics.model_loaded.labels(model_id, node.name).set(1 if ready else 0)


def _uptime(health: dict) -> float:
    value = health.get("uptime_seconds")
    return float(value) if isinstance(value, (int, float)) else 0.0
