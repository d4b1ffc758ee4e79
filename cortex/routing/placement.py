"""Where a model can go: profile × node topology, planned memory, and eviction victims.

Memory is planned from the profiles (`vram_mb`, or where a profile gives none the
size the node estimates from the model's files), not read from the devices' free
memory, so decisions are deterministic and do not race with loads in progress. A
model loaded outside the catalogue counts with the memory the neuron reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.config import ModelProfile
from cortex.fleet.nodes import Node
from cortex.routing.catalogue import Catalogue

MB = 1024 * 1024


@dataclass
class Plan:
    node: Node
    devices: list[str]
    victims: list[str] = field(default_factory=list)


def device_capacity_mb(device: dict) -> float:
    return float(device.get("memory_total_bytes") or 0) / MB


def feasible(profile: ModelProfile, node: Node) -> bool:
    """Could the node ever hold the model (empty, by its device count and sizes)?"""
    return _pick_devices(profile, node, {d["id"]: device_capacity_mb(d) for d in node.devices()})[0]


def planned_free_mb(node: Node, catalogue: Catalogue, without: set[str]) -> dict[str, float]:
    """Capacity minus the planned size of every model loaded or loading, per device."""
    free = {d["id"]: device_capacity_mb(d) for d in node.devices()}
    for model_id, entry in node.models.items():
        if model_id in without or entry.status == "failed":
            continue
        profile = catalogue.profile(model_id)
        size = (profile and profile.vram_mb) or entry.memory_bytes / MB
        on = [d for d in entry.devices if d in free] or list(free)[:1]
        for device in on:
            free[device] -= size / len(on)
    return free


def planned_mb(profile: ModelProfile, node: Node) -> float:
    """The profile's `vram_mb`, else what the node estimates from the model's files (a
    GGUF: its packed weights' bytes, which the neuron holds as stored), else 0."""
    if profile.vram_mb:
        return profile.vram_mb
    for item in node.available:
        if item.get("id") == profile.model_id:
            return float(item.get("memory_estimate_bytes") or item.get("size_bytes") or 0) / MB
    return 0.0


def _pick_devices(
    profile: ModelProfile, node: Node, free: dict[str, float]
) -> tuple[bool, list[str]]:
    """The `min_devices` devices with the most room, if each can take its share."""
    sizes = {d["id"]: device_capacity_mb(d) for d in node.devices()}
    usable = [d for d in free if sizes.get(d, 0) >= profile.min_device_vram_mb]
    usable.sort(key=lambda d: free[d], reverse=True)
    chosen = usable[: profile.min_devices]
    share = planned_mb(profile, node) / profile.min_devices
    ok = len(chosen) == profile.min_devices and all(free[d] >= share for d in chosen)
    return ok, chosen


def eviction_order(node: Node, catalogue: Catalogue, strategy: str, target: str) -> list[str]:
    """Models on the node that may be evicted, first to go first (pinned ones never)."""
    candidates = [
        m
        for m, entry in node.models.items()
        if m != target and entry.status == "ready" and not catalogue.pinned(m, node.name)
    ]
    if strategy == "priority":
        return sorted(candidates, key=lambda m: (catalogue.priority(m), node.idle_since(m)))
    return sorted(candidates, key=node.idle_since)


def plan_load(
    profile: ModelProfile, node: Node, catalogue: Catalogue, strategy: str, allow_busy: bool
) -> Plan | None:
    """Devices for the model on this node, evicting in order until it fits, or None.

    With `allow_busy=False`, models with requests in flight are never victims; the
    router asks with `allow_busy=True` only to learn whether waiting could help.
    """
    victims: list[str] = []
    free = planned_free_mb(node, catalogue, set())
    ok, devices = _pick_devices(profile, node, free)
    order = eviction_order(node, catalogue, strategy, profile.model_id)
    for victim in order:
        if ok:
            break
        if node.busy(victim) and not allow_busy:
            continue
        victims.append(victim)
        free = planned_free_mb(node, catalogue, set(victims))
        ok, devices = _pick_devices(profile, node, free)
    return Plan(node, devices, victims) if ok else None


def device_ids_for_load(node: Node, devices: list[str]) -> list[str] | None:
    """Device ids to name in the load call: only GPUs (a CPU-only node picks its own)."""
    kinds = {d["id"]: d.get("kind") for d in node.devices()}
    return devices if devices and all(kinds.get(d) == "cuda" for d in devices) else None
