"""The merged model catalogue: profiles from models.toml, aliases, and what nodes hold.

`entries()` is what `/v1/models` lists: every model loaded anywhere, every profile
feasible on a healthy node, and every alias of one of those, each with where it is
loaded and where it could be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cortex.config import ModelProfile, ModelsConfig
from cortex.routing.placement import feasible

if TYPE_CHECKING:
    from cortex.fleet.nodes import Fleet


@dataclass
class Entry:
    id: str
    loaded_on: list[str] = field(default_factory=list)
    loading_on: list[str] = field(default_factory=list)
    loadable_on: list[str] = field(default_factory=list)
    alias_of: str | None = None
    context_length: int | None = None


class Catalogue:
    def __init__(self, config: ModelsConfig) -> None:
        self.profiles = {p.model_id: p for p in config.models}
        self.aliases = dict(config.aliases)
        # A quantised profile may also be named by its bare id when that is unambiguous.
        for profile in config.models:
            if profile.id != profile.model_id:
                self.aliases.setdefault(profile.id, profile.model_id)

    def resolve(self, name: str) -> str:
        """The model id a request names, through aliases (one level)."""
        return self.aliases.get(name, name)

    def profile(self, model_id: str) -> ModelProfile | None:
        return self.profiles.get(model_id)

    def pinned(self, model_id: str, node: str) -> bool:
        profile = self.profiles.get(model_id)
        return profile is not None and node in profile.pinned_on

    def priority(self, model_id: str) -> int:
        profile = self.profiles.get(model_id)
        return profile.priority if profile else 0

    def entries(self, fleet: Fleet) -> list[Entry]:
        found: dict[str, Entry] = {}
        for node in fleet.routable():
            for model_id, model in node.models.items():
                entry = found.setdefault(model_id, Entry(model_id))
                entry.context_length = entry.context_length or model.context_length
                if model.status == "ready":
                    entry.loaded_on.append(node.name)
                elif model.status == "loading":
                    entry.loading_on.append(node.name)
            for model_id, profile in self.profiles.items():
                if feasible(profile, node):
                    entry = found.setdefault(model_id, Entry(model_id))
                    entry.loadable_on.append(node.name)
                    entry.context_length = entry.context_length or profile.context_length
        for alias, target in sorted(self.aliases.items()):
            if target in found and alias not in found:
                base = found[target]
                found[alias] = Entry(
                    alias,
                    list(base.loaded_on),
                    list(base.loading_on),
                    list(base.loadable_on),
                    alias_of=target,
                    context_length=base.context_length,
                )
        return [found[k] for k in sorted(found)]

    def find(self, fleet: Fleet, name: str) -> Entry | None:
        return next((e for e in self.entries(fleet) if e.id == name), None)
