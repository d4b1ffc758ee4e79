"""What `/v1/models` lists: the catalogue merged with what the fleet holds.

`entries()` gives every model loaded anywhere, every configured profile (from the first
moment, even before any node answers), and every alias of one of those, each with its
status and where it is loaded or could be loaded. It sits above the catalogue (profiles
and aliases) and placement (what a node could hold), so neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.fleet.nodes import Fleet
from cortex.routing.catalogue import Catalogue
from cortex.routing.placement import feasible


@dataclass
class Entry:
    id: str
    loaded_on: list[str] = field(default_factory=list)
    loading_on: list[str] = field(default_factory=list)
    loadable_on: list[str] = field(default_factory=list)
    alias_of: str | None = None
    context_length: int | None = None
    nodes_coming: bool = False  # some node has not answered yet or is still starting
    capabilities: list[str] | None = None  # models.toml's, else a node's; None: not known yet

    @property
    def status(self) -> str:
        """ready (loaded somewhere), loading, loadable, starting (no node can say yet: they
        are still coming up), or unavailable (no node can hold it now)."""
        if self.loaded_on:
            return "ready"
        if self.loading_on:
            return "loading"
        if self.loadable_on:
            return "loadable"
        return "starting" if self.nodes_coming else "unavailable"


def entries(catalogue: Catalogue, fleet: Fleet) -> list[Entry]:
    """Every listed model and alias, sorted by id."""
    profiles = catalogue.profiles
    found = {
        m: Entry(m, context_length=p.context_length, capabilities=p.capabilities)
        for m, p in profiles.items()
    }
    for node in fleet:
        starting = node.status in ("unknown", "starting") and not node.draining
        if not (node.routable or starting):
            continue
        for model_id, model in node.models.items():
            entry = found.setdefault(model_id, Entry(model_id))
            entry.context_length = entry.context_length or model.context_length
            entry.capabilities = entry.capabilities or model.capabilities
            if model.status == "ready" and node.routable:
                entry.loaded_on.append(node.name)
            elif model.status in ("loading", "ready"):  # ready on a node still starting
                entry.loading_on.append(node.name)
        for model_id, profile in profiles.items():
            if node.routable and feasible(profile, node):
                found[model_id].loadable_on.append(node.name)
    coming = any(n.status in ("unknown", "starting") and not n.draining for n in fleet)
    for entry in found.values():
        entry.nodes_coming = coming
    targets = {a: catalogue.resolve(a) for a in catalogue.aliases}
    targets.update((p, catalogue.resolve(t)) for p, t in catalogue.patterns)
    for alias, target in targets.items():
        if target in found and alias not in found:
            found[alias] = _alias_entry(alias, found[target])
    return [found[k] for k in sorted(found)]


def find(catalogue: Catalogue, fleet: Fleet, name: str) -> Entry | None:
    """The entry of a name, listed or matched by a pattern alias."""
    listed = {e.id: e for e in entries(catalogue, fleet)}
    if name in listed:
        return listed[name]
    target = listed.get(catalogue.resolve(name))
    return _alias_entry(name, target) if target is not None else None


def _alias_entry(alias: str, base: Entry) -> Entry:
    return Entry(
        alias,
        list(base.loaded_on),
        list(base.loading_on),
        list(base.loadable_on),
        alias_of=base.id,
        context_length=base.context_length,
        nodes_coming=base.nodes_coming,
        capabilities=base.capabilities,
    )
