"""What the gateway knows about each neuron: reachability, devices, models, in-flight work.

`Node` is the one owner of that state: every change is one of its transition methods
(mark up or down, take and release a request, begin and finish a load or an unload,
reset after a restart), which also moves the node's gauges and wakes the waiters of
`Fleet.wait_change()`, so a request waiting for a load or a node sleeps on an event
instead of polling. The poller, lifecycle, evictor and router call them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cortex.fleet.client import NeuronClient
from cortex.fleet.models import ModelOnNode
from cortex.metrics import Metrics

# What the poller last concluded about a node ("unknown" until its first answer).
NodeStatus = Literal["unknown", "up", "starting", "draining", "suspect", "down"]


@dataclass(eq=False)
class Node:
    name: str
    endpoint: str
    client: NeuronClient
    metrics: Metrics = field(repr=False)
    notify: Callable[[], None] = field(repr=False)  # wakes the fleet's waiters
    status: NodeStatus = "unknown"
    failures: int = 0
    last_error: str | None = None
    uptime: float = 0.0
    health: dict[str, Any] = field(default_factory=dict)  # the last /health answer
    discovery: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelOnNode] = field(default_factory=dict)
    available: list[dict[str, Any]] = field(default_factory=list)
    inflight: dict[str, int] = field(default_factory=dict)
    # Requests in flight here from the other gateways (cortex.state.shared), per model.
    remote_inflight: dict[str, int] = field(default_factory=dict)
    last_used: dict[str, float] = field(default_factory=dict)
    cycles: int = 0
    draining: bool = False
    # Called when the node is marked down or suspect: requests waiting for its first
    # byte move on at once (`watch_lost`, cortex/app/first_byte.py).
    _lost_watchers: set[Callable[[], None]] = field(default_factory=set, repr=False)

    # Reading.

    @property
    def routable(self) -> bool:
        return self.status == "up" and not self.draining

    def has_ready(self, model_id: str) -> bool:
        entry = self.models.get(model_id)
        return entry is not None and entry.status == "ready"

    def total_inflight(self) -> int:
        return sum(self.inflight.values()) + sum(self.remote_inflight.values())

    def load(self, model_id: str) -> int:
        """Requests of the model in flight here from every gateway."""
        return self.inflight.get(model_id, 0) + self.remote_inflight.get(model_id, 0)

    @property
    def lost(self) -> bool:
        """Marked down or suspect: nothing waits on it."""
        return self.status in ("down", "suspect")

    def watch_lost(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the node is next marked down or suspect; returns the
        function that stops watching."""
        self._lost_watchers.add(callback)
        return lambda: self._lost_watchers.discard(callback)

    def busy(self, model_id: str) -> bool:
        """Requests are running on this model here: ours, or others' the neuron reported.

        The neuron's counts are trusted only if read after our last request on the model
        ended; an older snapshot may still count that finished request.
        """
        if self.inflight.get(model_id) or self.remote_inflight.get(model_id):
            return True
        entry = self.models.get(model_id)
        if entry is None or entry.seen_at < self.last_used.get(model_id, 0.0):
            return False
        return bool(entry.running or entry.waiting)

    def idle_since(self, model_id: str) -> float:
        """When the model was last used here, by our clock or, failing that, the neuron's."""
        entry = self.models.get(model_id)
        ours = self.last_used.get(model_id)
        theirs = entry.last_used if entry else None
        return max(v for v in (ours, theirs, 0.0) if v is not None)

    def devices(self) -> list[dict[str, Any]]:
        """The devices this node serves on: its CUDA devices, or the CPU where it has none."""
        found = self.health.get("devices") or self.discovery.get("devices") or []
        cuda = [d for d in found if d.get("kind") == "cuda"]
        return cuda or [d for d in found if d.get("kind", "cpu") == "cpu"][:1]

    # Reachability (the poller, and the proxy when a node fails a request).

    def mark_up(self, status: NodeStatus, health: dict[str, Any], uptime: float) -> None:
        """A good answer to /health: failures forgotten, the neuron's own status taken."""
        self.failures, self.last_error = 0, None
        self.health, self.uptime, self.status = health, uptime, status
        self.metrics.child(self.metrics.node_up, self.name).set(1)

    def discovered(self, discovery: dict[str, Any]) -> None:
        """The neuron's /discovery (host, software, devices), asked after each restart."""
        self.discovery = discovery

    def count_failure(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason

    def mark_down(self) -> None:
        """No traffic until the poller hears from it again; its models no longer count."""
        self.status = "down"
        self._tell_lost()
        for model_id in self.models:
            self._loaded_gauge(model_id, False)
        self.metrics.child(self.metrics.node_up, self.name).set(0)
        self.notify()

    def mark_suspect(self, reason: str) -> None:
        """The node took a request and did not answer in time: route nothing new to it
        until the poller hears from it again (a good poll sets the status afresh)."""
        if self.status != "down":
            self.status = "suspect"
        self.last_error = reason
        self._tell_lost()
        self.notify()

    def _tell_lost(self) -> None:
        for callback in list(self._lost_watchers):
            callback()

    def restarted(self) -> None:
        """The neuron came back with nothing of ours: forget uses and unload cycles."""
        self.last_used.clear()
        self.cycles = 0

    def begin_drain(self) -> None:
        """No new requests (defrag waits for those in flight, then restarts the neuron)."""
        self.draining = True

    def end_drain(self, restarted: bool) -> None:
        """Routable again; after a restart, unknown until the next poll."""
        if restarted:
            self.status, self.models, self.cycles = "unknown", {}, 0
        self.draining = False
        self.notify()

    def apply_models(self, payload: dict[str, Any], seen_at: float, pending: list[str]) -> None:
        """The neuron's /models answer, keeping what the gateway is doing meanwhile
        (unloads it started, loads still in flight)."""
        previous = self.models
        fresh = {}
        for item in payload.get("loaded") or []:
            entry = ModelOnNode.from_wire(item)
            entry.seen_at = seen_at
            if previous.get(entry.id) and previous[entry.id].status == "unloading":
                entry.status = "unloading"
            fresh[entry.id] = entry
            self.last_used.setdefault(entry.id, seen_at)  # idle counts from first sight
        for model_id in pending:
            fresh.setdefault(model_id, previous.get(model_id) or ModelOnNode(model_id, "loading"))
        self.models = fresh
        self.available = list(payload.get("available") or [])
        for model_id in set(previous) | set(fresh):
            self._loaded_gauge(model_id, model_id in fresh and fresh[model_id].status == "ready")

    # Requests (the router).

    def take(self, model_id: str) -> None:
        """Count a request in flight (before any await, so no eviction races it)."""
        self.inflight[model_id] = self.inflight.get(model_id, 0) + 1
        self.metrics.child(self.metrics.inflight, model_id, self.name).inc()

    def release(self, model_id: str) -> None:
        self.inflight[model_id] = max(0, self.inflight.get(model_id, 0) - 1)
        self.touch(model_id)
        self.metrics.child(self.metrics.inflight, model_id, self.name).dec()
        if not self.inflight[model_id]:
            self.notify()  # an eviction or a drain may be waiting for this

    def set_remote_inflight(self, counts: dict[str, int]) -> None:
        """The other gateways' requests in flight here, as last exchanged."""
        ended = any(counts.get(m, 0) < c for m, c in self.remote_inflight.items())
        self.remote_inflight = counts
        if ended:
            self.notify()  # an eviction or a drain may be waiting for these

    def touch(self, model_id: str) -> None:
        self.last_used[model_id] = time.time()

    # Loads and unloads (the lifecycle).

    def begin_load(self, model_id: str, devices: list[str], victims: list[str]) -> None:
        """Mark the load and its victims at once, so no request is routed to either."""
        for victim in victims:
            self.models[victim].status = "unloading"
        self.models[model_id] = ModelOnNode(model_id, "loading", devices)

    def finish_load(
        self,
        model_id: str,
        devices: list[str],
        context_length: int | None,
        capabilities: list[str] | None = None,
    ) -> None:
        entry = self.models.setdefault(model_id, ModelOnNode(model_id))
        entry.status = "ready"
        entry.devices = devices
        if context_length is not None:
            entry.context_length = context_length
        entry.capabilities = capabilities or entry.capabilities
        self.touch(model_id)
        self._loaded_gauge(model_id, True)
        self.notify()

    def abort_load(self, model_id: str) -> None:
        self.models.pop(model_id, None)
        self.notify()

    def begin_unload(self, model_id: str) -> None:
        entry = self.models.get(model_id)
        if entry is not None:
            entry.status = "unloading"

    def abort_unload(self, model_id: str) -> None:
        entry = self.models.get(model_id)
        if entry is not None:
            entry.status = "ready"

    def finish_unload(self, model_id: str, eviction: str | None) -> None:
        """Gone from the node; `eviction` (a reason) counts it as an eviction."""
        self.models.pop(model_id, None)
        self.last_used.pop(model_id, None)
        self.cycles += 1
        self._loaded_gauge(model_id, False)
        if eviction:
            self.metrics.child(self.metrics.evictions, model_id, self.name, eviction).inc()
        self.notify()

    def _loaded_gauge(self, model_id: str, ready: bool) -> None:
        self.metrics.child(self.metrics.model_loaded, model_id, self.name).set(1 if ready else 0)


class Fleet:
    """All nodes by name, plus an event that fires whenever any of them changes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.nodes: dict[str, Node] = {}
        self._event = asyncio.Event()

    def add(self, name: str, endpoint: str, client: NeuronClient) -> Node:
        node = Node(name, endpoint, client, self.metrics, self.notify)
        self.nodes[name] = node
        return node

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def notify(self) -> None:
        """Wake everyone waiting on a change, then arm a fresh event."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    def routable(self) -> list[Node]:
        return [node for node in self if node.routable]

    def holders(self, model_id: str) -> list[Node]:
        """Routable nodes with the model ready, least in-flight first."""
        nodes = [n for n in self.routable() if n.has_ready(model_id)]
        return sorted(nodes, key=lambda n: (n.load(model_id), n.total_inflight()))
