"""Loads and unloads on neurons, each single-flight, with eviction before a load.

Every load the gateway starts goes through `load_on` (keyed by node and model) and
every cold load through `ensure_loaded` (keyed by model), so concurrent requests,
the pinned keeper and operators all join the same work instead of repeating it. A cold
load also takes the fleet-wide lease of its model (`Shared.claim_load`): while another
gateway holds it, this one waits for that load to appear rather than start its own.
Planning, marking victims and registering the pending load happen without an
`await` in between, so a request can never be routed to a model being evicted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from cortex.common.wire import ApiError
from cortex.config import CortexConfig, ModelProfile
from cortex.fleet.nodes import Fleet, Node
from cortex.metrics import Metrics
from cortex.routing.catalogue import Catalogue
from cortex.routing.placement import Plan, device_ids_for_load, feasible, plan_load
from cortex.state.shared import Shared

log = logging.getLogger("cortex.routing.lifecycle")


class Lifecycle:
    def __init__(
        self,
        fleet: Fleet,
        catalogue: Catalogue,
        metrics: Metrics,
        config: CortexConfig,
        shared: Shared,
    ) -> None:
        self.fleet, self.catalogue, self.metrics, self.config = fleet, catalogue, metrics, config
        self.shared = shared
        self._loads: dict[tuple[str, str], asyncio.Task[str]] = {}
        self._cold: dict[str, asyncio.Task[str | None]] = {}

    def loading(self, model_id: str) -> list[asyncio.Task]:
        """Loads of the model in progress on routable nodes, plus a cold load being placed."""
        tasks = [t for (n, m), t in self._loads.items() if m == model_id and self._up(n)]
        if model_id in self._cold:
            tasks.append(self._cold[model_id])
        return tasks

    def pending_on(self, node: str) -> list[str]:
        """Models whose load on the node is in flight (the poller keeps them in view)."""
        return [m for (n, m) in self._loads if n == node]

    def _up(self, name: str) -> bool:
        return self.fleet.nodes[name].routable

    def ensure_loaded(
        self, profile: ModelProfile, exclude: frozenset[str] = frozenset()
    ) -> asyncio.Task[str | None]:
        """One cold load per model: the task gives the node, or None to wait for idle models.

        Nodes in `exclude` (one just failed this request) and nodes that already hold the
        model are not candidates.
        """
        task = self._cold.get(profile.model_id)
        if task is None:
            task = spawn(self._cold_load(profile, exclude))
            self._cold[profile.model_id] = task
            task.add_done_callback(lambda _: self._cold.pop(profile.model_id, None))
        return task

    async def _cold_load(self, profile: ModelProfile, exclude: frozenset[str]) -> str | None:
        await self.shared.exchange()  # plan with the other gateways' requests counted
        nodes = [
            n
            for n in self.fleet.routable()
            if n.name not in exclude and not _holds(n, profile.model_id) and feasible(profile, n)
        ]
        if not nodes:
            if any(
                n.name not in exclude
                and getattr(n.models.get(profile.model_id), "status", "") == "loading"
                for n in self.fleet.routable()
            ):
                return None  # a neuron is loading it on its own (its default models, say)
            if any(
                n.name not in exclude and n.status in ("unknown", "starting") for n in self.fleet
            ):
                return None  # a neuron still coming up (loading its default models) may hold it
            where = "healthy neuron" if self.fleet.routable() else "neuron (none is healthy)"
            raise ApiError(503, f"no {where} can hold model '{profile.model_id}'", retry_after=10)
        plan = self._best_plan(profile, nodes, allow_busy=False)
        if plan is None:
            if self._best_plan(profile, nodes, allow_busy=True) is not None:
                return None  # room appears once requests in flight finish
            raise ApiError(
                503,
                f"model '{profile.model_id}' does not fit beside the pinned models on any node",
                retry_after=30,
            )
        node = plan.node
        if await self.shared.claim_load(profile.model_id, node.name) != node.name:
            return None  # another gateway is loading it: wait for that load to show
        async with self.shared.holding_load(profile.model_id):
            # Planned afresh: the fleet may have moved while the lease was asked for.
            plan = plan_load(profile, node, self.catalogue, self.config.eviction.strategy, False)
            if plan is None or not node.routable:
                return None
            await self.load_on(node, profile, plan)
        return node.name

    def _best_plan(self, profile: ModelProfile, nodes: list[Node], allow_busy: bool) -> Plan | None:
        strategy = self.config.eviction.strategy
        plans = [
            p for n in nodes if (p := plan_load(profile, n, self.catalogue, strategy, allow_busy))
        ]
        if not plans:
            return None
        return min(
            plans,
            key=lambda p: (
                p.node.name not in profile.pinned_on,
                len(p.victims),
                p.node.total_inflight(),
            ),
        )

    def load_on(
        self, node: Node, profile: ModelProfile, plan: Plan | None = None
    ) -> Awaitable[str]:
        """Load the model on the node (evicting first if the plan says so); single flight."""
        key = (node.name, profile.model_id)
        task = self._loads.get(key)
        if task is not None:
            return asyncio.shield(task)
        plan = plan or plan_load(
            profile, node, self.catalogue, self.config.eviction.strategy, False
        )
        if plan is None:
            raise ApiError(
                507, f"model '{profile.model_id}' does not fit on node '{node.name}' now"
            )
        node.begin_load(profile.model_id, plan.devices, plan.victims)
        task = spawn(self._load(node, profile, plan))
        self._loads[key] = task
        task.add_done_callback(lambda _: self._loads.pop(key, None))
        return asyncio.shield(task)

    async def _load(self, node: Node, profile: ModelProfile, plan: Plan) -> str:
        model_id = profile.model_id
        try:
            for victim in plan.victims:
                await self.unload(node, victim, reason="capacity")
            self.metrics.cold_starts.labels(model_id, node.name).inc()
            started = time.monotonic()
            timeout = self.config.upstream.load_timeout_seconds
            answer = await node.client.load(
                model_id, device_ids_for_load(node, plan.devices), timeout
            )
        except BaseException:
            node.abort_load(model_id)
            raise
        self.metrics.load_duration.labels(model_id, node.name).observe(time.monotonic() - started)
        devices = [str(d) for d in answer.get("devices") or plan.devices]
        capabilities = answer.get("capabilities")
        capabilities = [str(c) for c in capabilities] if isinstance(capabilities, list) else None
        node.finish_load(model_id, devices, answer.get("context_length"), capabilities)
        log.info("loaded %s on %s in %.1fs", model_id, node.name, time.monotonic() - started)
        return node.name

    async def unload(self, node: Node, model_id: str, reason: str | None) -> None:
        """Unload a model; `reason` set means an eviction and is counted as one."""
        node.begin_unload(model_id)
        try:
            await node.client.unload(model_id, self.config.upstream.request_timeout_seconds)
        except ApiError as err:
            if err.status != 404:
                node.abort_unload(model_id)
                raise
        node.finish_unload(model_id, eviction=reason)
        log.info("unloaded %s from %s (%s)", model_id, node.name, reason or "operator")


def _holds(node: Node, model_id: str) -> bool:
    """Loaded, loading or being unloaded there (a failed load may be tried again)."""
    entry = node.models.get(model_id)
    return entry is not None and entry.status != "failed"


def spawn(coro) -> asyncio.Task:
    """A task whose failure is not reported as 'never retrieved' when nobody waits on it."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task
