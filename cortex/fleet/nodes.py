"""What the gateway knows about each neuron: reachability, devices, models, in-flight work.

The poller writes it, the router and evictor read it; every change wakes the waiters
that `Fleet.changed()` hands out, so a request waiting for a load or a node sleeps
on an event instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cortex.fleet.client import NeuronClient

NodeState = str  # "unknown" | "up" | "starting" | "draining" | "suspect" | "down"


@dataclass
class ModelOnNode:
    """One entry of a neuron's `GET /models` `loaded` list."""

    id: str
    status: str = "ready"
    devices: list[str] = field(default_factory=list)
    memory_bytes: int = 0
    context_length: int | None = None
    running: int = 0
    waiting: int = 0
    last_used: float | None = None
    error: str | None = None
    seen_at: float = 0.0  # when the poller read running/waiting

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> ModelOnNode:
        return cls(
            id=str(item["id"]),
            status=str(item.get("status", "ready")),
            devices=[str(d) for d in item.get("devices") or []],
            memory_bytes=int(item.get("memory_bytes") or 0),
            context_length=item.get("context_length"),
            running=int(item.get("running") or 0),
            waiting=int(item.get("waiting") or 0),
            last_used=_epoch(item.get("last_used")),
            error=item.get("error"),
        )


def _epoch(value: Any) -> float | None:
    """`last_used` as epoch seconds, whether the neuron sent a number or an ISO time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass
class Node:
    name: str
    endpoint: str
    client: NeuronClient
    state: NodeState = "unknown"
    failures: int = 0
    last_error: str | None = None
    uptime: float = 0.0
    health: dict[str, Any] = field(default_factory=dict)
    discovery: dict[str, Any] = field(default_factory=dict)
    models: dict[str, ModelOnNode] = field(default_factory=dict)
    available: list[dict[str, Any]] = field(default_factory=list)
    inflight: dict[str, int] = field(default_factory=dict)
    last_used: dict[str, float] = field(default_factory=dict)
    cycles: int = 0
    draining: bool = False

    def mark_suspect(self, reason: str) -> None:
        """The node took a request and did not answer in time: route nothing new to it
        until the poller hears from it again (a good poll sets the state afresh)."""
        if self.state != "down":
            self.state = "suspect"
        self.last_error = reason

    @property
    def routable(self) -> bool:
        return self.state == "up" and not self.draining

    def has_ready(self, model_id: str) -> bool:
        entry = self.models.get(model_id)
        return entry is not None and entry.status == "ready"

    def total_inflight(self) -> int:
        return sum(self.inflight.values())

    def busy(self, model_id: str) -> bool:
        """Requests are running on this model here: ours, or others' the neuron reported.

        The neuron's counts are trusted only if read after our last request on the model
        ended; an older snapshot may still count that finished request.
        """
        if self.inflight.get(model_id):
            return True
        entry = self.models.get(model_id)
        if entry is None or entry.seen_at < self.last_used.get(model_id, 0.0):
            return False
        return bool(entry.running or entry.waiting)

    def touch(self, model_id: str) -> None:
        self.last_used[model_id] = time.time()

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


class Fleet:
    """All nodes by name, plus an event that fires whenever any of them changes."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = {node.name: node for node in nodes}
        self._event = asyncio.Event()

    def __iter__(self):
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
        return sorted(nodes, key=lambda n: (n.inflight.get(model_id, 0), n.total_inflight()))
