"""Placement on GPU topologies the CPU-only test machine cannot run: device counts,
per-device memory, planned memory, eviction order and busy models."""

from __future__ import annotations

import time

from cortex.config import ModelProfile, ModelsConfig
from cortex.fleet.models import ModelOnNode
from cortex.fleet.nodes import Fleet, Node
from cortex.metrics import Metrics
from cortex.routing.catalogue import Catalogue
from cortex.routing.placement import (
    device_ids_for_load,
    eviction_order,
    feasible,
    plan_load,
    planned_free_mb,
)

GIB_MB = 1024


def gpu_node(name: str, gpus: int, gib: int) -> Node:
    devices = [
        {"id": f"cuda-{i}", "kind": "cuda", "memory_total_bytes": gib * 1024**3}
        for i in range(gpus)
    ]
    devices.append({"id": "cpu", "kind": "cpu", "memory_total_bytes": 256 * 1024**3})
    node = Fleet(Metrics()).add(name, "http://x", client=None)  # type: ignore[arg-type]
    node.mark_up("up", {"devices": devices}, uptime=1.0)
    return node


def loaded(node: Node, model: str, devices: list[str], used_ago: float) -> None:
    node.models[model] = ModelOnNode(model, "ready", devices)
    node.last_used[model] = time.time() - used_ago


PROFILES = [
    ModelProfile("big", vram_mb=40 * GIB_MB, min_devices=2, min_device_vram_mb=20 * GIB_MB),
    ModelProfile("a", vram_mb=16 * GIB_MB, priority=1),
    ModelProfile("b", vram_mb=16 * GIB_MB, priority=9),
    ModelProfile("pinned", vram_mb=4 * GIB_MB, pinned_on=["g"]),
    ModelProfile("huge-per-gpu", vram_mb=30 * GIB_MB, min_device_vram_mb=48 * GIB_MB),
]
CATALOGUE = Catalogue(ModelsConfig(models=PROFILES))


def profile(model: str) -> ModelProfile:
    return CATALOGUE.profile(model)


def test_topology_feasibility() -> None:
    two, one = gpu_node("g", 2, 24), gpu_node("h", 1, 80)
    assert feasible(profile("big"), two)
    assert not feasible(profile("big"), one), "needs two devices"
    assert not feasible(profile("huge-per-gpu"), two), "each device must have 48 GiB"
    assert feasible(profile("huge-per-gpu"), one)
    plan = plan_load(profile("big"), two, CATALOGUE, "lru", allow_busy=False)
    assert sorted(plan.devices) == ["cuda-0", "cuda-1"] and plan.victims == []
    assert sorted(device_ids_for_load(two, plan.devices)) == ["cuda-0", "cuda-1"]


def test_planned_memory_picks_the_emptier_device() -> None:
    node = gpu_node("g", 2, 24)
    loaded(node, "a", ["cuda-0"], used_ago=10)
    plan = plan_load(profile("b"), node, CATALOGUE, "lru", allow_busy=False)
    assert plan.devices == ["cuda-1"] and plan.victims == []


def test_eviction_order_and_pins() -> None:
    node = gpu_node("g", 1, 40)
    loaded(node, "pinned", ["cuda-0"], used_ago=500)
    loaded(node, "a", ["cuda-0"], used_ago=1)  # low priority, recently used
    loaded(node, "b", ["cuda-0"], used_ago=100)  # high priority, least recently used
    assert eviction_order(node, CATALOGUE, "lru", target="x") == ["b", "a"]
    assert eviction_order(node, CATALOGUE, "priority", target="x") == ["a", "b"]
    new = ModelProfile("c", vram_mb=16 * GIB_MB)
    catalogue = Catalogue(ModelsConfig(models=[*PROFILES, new]))
    assert plan_load(new, node, catalogue, "lru", allow_busy=False).victims == ["b"]
    assert plan_load(new, node, catalogue, "priority", allow_busy=False).victims == ["a"]


def test_busy_models_are_never_victims() -> None:
    node = gpu_node("g", 1, 40)
    loaded(node, "a", ["cuda-0"], used_ago=1)
    loaded(node, "b", ["cuda-0"], used_ago=100)
    node.inflight = {"a": 1}
    node.models["b"].running = 2  # reported by the neuron after our last use of it
    node.models["b"].seen_at = time.time()
    new = ModelProfile("c", vram_mb=16 * GIB_MB)
    catalogue = Catalogue(ModelsConfig(models=[*PROFILES, new]))
    assert plan_load(new, node, catalogue, "lru", allow_busy=False) is None
    assert plan_load(new, node, catalogue, "lru", allow_busy=True).victims == ["b"]


def test_a_running_count_older_than_our_last_request_is_not_trusted() -> None:
    node = gpu_node("g", 1, 40)
    loaded(node, "a", ["cuda-0"], used_ago=0)
    node.models["a"].running, node.models["a"].seen_at = 1, time.time() - 5
    assert not node.busy("a"), "the snapshot still counted our own finished request"
    node.models["a"].seen_at = time.time() + 1
    assert node.busy("a")


def test_a_profile_without_vram_plans_with_the_nodes_file_estimate() -> None:
    """A GGUF profile may leave out `vram_mb`: the node's estimate from the file counts."""
    node = gpu_node("g", 1, 24)
    node.available = [
        {"id": "q4-32b", "format": "gguf", "size_bytes": 19 * 1024**3,
         "memory_estimate_bytes": 19 * 1024**3},
        {"id": "bf16-32b", "format": "hf", "size_bytes": 64 * 1024**3},
    ]  # fmt: skip
    assert feasible(ModelProfile("q4-32b"), node)
    assert not feasible(ModelProfile("bf16-32b"), node), "64 GiB of files on a 24 GiB card"
    node.available.append(
        {"id": "org/q5:Q5_K_M", "format": "gguf", "size_bytes": 30 * 1024**3,
         "memory_estimate_bytes": 30 * 1024**3},
    )  # fmt: skip
    assert not feasible(ModelProfile("org/q5", quant="Q5_K_M"), node), "listed as repo:QUANT"
    node.models["q4-32b"] = ModelOnNode("q4-32b", "ready", ["cuda-0"], memory_bytes=19 * 1024**3)
    free = planned_free_mb(node, Catalogue(ModelsConfig(models=[ModelProfile("q4-32b")])), set())
    assert free["cuda-0"] == 5 * GIB_MB
