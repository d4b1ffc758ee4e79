"""Router, lifecycle and evictor in process, against a fake neuron client (no processes):
single-flight loads, no eviction from under requests in flight, idle unload, and the
lru and priority choices of a victim."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cortex.config import CortexConfig, EvictionSection, ModelProfile, ModelsConfig, RoutingSection
from cortex.fleet.nodes import Fleet, Node
from cortex.metrics import Metrics
from cortex.routing.catalogue import Catalogue
from cortex.routing.evictor import Evictor
from cortex.routing.lifecycle import Lifecycle
from cortex.routing.router import Router
from cortex.state.memory import MemoryState
from cortex.state.shared import Shared

GIB = 1024**3


class FakeNeuronClient:
    """The calls the lifecycle makes, recorded; a load waits until `open` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def load(self, model_id: str, devices: list[str] | None, timeout: float) -> dict:
        self.calls.append(("load", model_id))
        await self.open.wait()
        return {"devices": ["cpu"], "context_length": 2048}

    async def unload(self, model_id: str, timeout: float, force: bool = False) -> dict:
        self.calls.append(("unload", model_id))
        return {}

    async def restart(self, timeout: float) -> dict:
        self.calls.append(("restart", ""))
        return {}


class Gateway:
    """One node with `gib` GiB of CPU memory, and the routing parts around it."""

    def __init__(self, profiles: list[ModelProfile], gib: int, **eviction: Any) -> None:
        config = CortexConfig(
            eviction=EvictionSection(**eviction),
            routing=RoutingSection(max_wait_seconds=5, keepalive_seconds=0.05),
        )
        metrics = Metrics()
        self.fleet = Fleet(metrics)
        self.client = FakeNeuronClient()
        self.node: Node = self.fleet.add("n1", "http://fake", self.client)  # type: ignore[arg-type]
        device = {"id": "cpu", "kind": "cpu", "memory_total_bytes": gib * GIB}
        self.node.mark_up("up", {"devices": [device]}, uptime=1.0)
        self.catalogue = Catalogue(ModelsConfig(models=profiles))
        shared = Shared(MemoryState(), self.fleet, config.state)
        self.lifecycle = Lifecycle(self.fleet, self.catalogue, metrics, config, shared)
        self.router = Router(
            self.fleet, self.catalogue, self.lifecycle, metrics, config.routing, shared
        )
        self.evictor = Evictor(self.fleet, self.catalogue, self.lifecycle, config)

    def loaded(self, model_id: str, idle_seconds: float) -> None:
        """A model the node already holds, last used `idle_seconds` ago."""
        self.node.begin_load(model_id, ["cpu"], victims=[])
        self.node.finish_load(model_id, ["cpu"], 2048)
        self.node.last_used[model_id] = time.time() - idle_seconds


def profile(model_id: str, gib: int = 1, **kw: Any) -> ModelProfile:
    return ModelProfile(model_id, vram_mb=gib * 1024, **kw)


async def test_concurrent_requests_share_one_load() -> None:
    gw = Gateway([profile("m")], gib=4)
    gw.client.open.clear()
    waiters = [asyncio.create_task(gw.router.acquire("m")) for _ in range(5)]
    await asyncio.sleep(0.1)
    assert gw.client.calls == [("load", "m")]
    assert gw.node.models["m"].status == "loading" and not any(w.done() for w in waiters)
    gw.client.open.set()
    nodes = await asyncio.gather(*waiters)
    assert nodes == [gw.node] * 5
    assert gw.client.calls == [("load", "m")]  # still one load
    assert gw.node.inflight["m"] == 5


async def test_a_model_with_requests_in_flight_is_not_evicted() -> None:
    gw = Gateway([profile("a", 3), profile("b", 3)], gib=4)
    gw.loaded("a", idle_seconds=100)
    node = await gw.router.acquire("a")  # a request in flight on a
    wanting_b = asyncio.create_task(gw.router.acquire("b"))
    await asyncio.sleep(0.3)
    assert gw.client.calls == []  # b waits: the only victim is busy
    assert gw.node.has_ready("a") and not wanting_b.done()
    node.release("a")
    assert await wanting_b is gw.node
    assert gw.client.calls == [("unload", "a"), ("load", "b")]
    assert "a" not in gw.node.models and gw.node.has_ready("b")


async def test_idle_models_are_unloaded_but_busy_and_pinned_ones_stay() -> None:
    profiles = [profile("idle"), profile("busy"), profile("pinned", pinned_on=["n1"]),
                profile("fresh")]  # fmt: skip
    gw = Gateway(profiles, gib=8, idle_unload_seconds=60)
    for model_id in ("idle", "busy", "pinned"):
        gw.loaded(model_id, idle_seconds=600)
    gw.loaded("fresh", idle_seconds=1)
    gw.node.take("busy")
    await gw.evictor.unload_idle()
    assert gw.client.calls == [("unload", "idle")]
    assert sorted(gw.node.models) == ["busy", "fresh", "pinned"]


@pytest.mark.parametrize(("strategy", "victim"), [("lru", "old"), ("priority", "low")])
async def test_the_victim_follows_the_strategy(strategy: str, victim: str) -> None:
    """`old` was used long ago but matters more; `low` is recent but matters less."""
    profiles = [profile("old", 2, priority=9), profile("low", 2, priority=1), profile("new", 2)]
    gw = Gateway(profiles, gib=4, strategy=strategy)
    gw.loaded("old", idle_seconds=500)
    gw.loaded("low", idle_seconds=5)
    assert await gw.router.acquire("new") is gw.node
    assert gw.client.calls == [("unload", victim), ("load", "new")]
    assert sorted(gw.node.models) == sorted({"old", "low", "new"} - {victim})


async def test_another_gateways_requests_keep_a_model_from_eviction() -> None:
    gw = Gateway([profile("a", 3), profile("b", 3)], gib=4)
    gw.loaded("a", idle_seconds=100)
    gw.node.set_remote_inflight({"a": 1})  # as exchanged through the shared state
    wanting_b = asyncio.create_task(gw.router.acquire("b"))
    await asyncio.sleep(0.3)
    assert gw.client.calls == [] and not wanting_b.done()
    gw.node.set_remote_inflight({})  # the other gateway's request ended
    assert await wanting_b is gw.node
    assert gw.client.calls == [("unload", "a"), ("load", "b")]
