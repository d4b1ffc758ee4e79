"""The merged model catalogue: profiles from models.toml, aliases, and what nodes hold.

`entries()` is what `/v1/models` lists: every model loaded anywhere, every configured
profile (from the first moment, even before any node answers), and every alias of
one of those, each with its status and where it is loaded or could be loaded.

Aliases may be patterns (`"claude-*" = "qwen3-8b"`, shell-style `*`, `?`, `[…]`); an
exact alias beats any pattern, and among patterns the most specific (the most
literal characters) wins. Chains resolve fully (an alias to an alias to a bare repo
id whose profile is `repo:Q4_1`), a cycle stops where it would repeat.
"""

from __future__ import annotations

import fnmatch
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


_WILDCARDS = set("*?[")


def _specificity(pattern: str) -> tuple[int, int]:
    """How specific a pattern is: literal characters first, then fewer wildcards."""
    wild = sum(1 for c in pattern if c in _WILDCARDS)
    return len(pattern) - wild, -wild


class Catalogue:
    def __init__(self, config: ModelsConfig) -> None:
        self.profiles = {p.model_id: p for p in config.models}
        self.aliases = {k: v for k, v in config.aliases.items() if not _WILDCARDS & set(k)}
        patterns = [k for k in config.aliases if _WILDCARDS & set(k)]
        self.patterns = [
            (p, config.aliases[p]) for p in sorted(patterns, key=_specificity, reverse=True)
        ]
        # A quantised profile may also be named by its bare id when that is unambiguous.
        for profile in config.models:
            if profile.id != profile.model_id:
                self.aliases.setdefault(profile.id, profile.model_id)

    def _step(self, name: str) -> str | None:
        """What one alias (exact first, then the most specific pattern) turns `name` into."""
        if name in self.profiles:
            return None
        if name in self.aliases:
            return self.aliases[name]
        return next((target for p, target in self.patterns if fnmatch.fnmatchcase(name, p)), None)

    def resolve(self, name: str) -> str:
        """The model id a request names, through every alias on the way."""
        seen = {name}
        while (target := self._step(name)) is not None and target not in seen:
            seen.add(target)
            name = target
        return name

    def profile(self, model_id: str) -> ModelProfile | None:
        return self.profiles.get(model_id)

    def pinned(self, model_id: str, node: str) -> bool:
        profile = self.profiles.get(model_id)
        return profile is not None and node in profile.pinned_on

    def priority(self, model_id: str) -> int:
        profile = self.profiles.get(model_id)
        return profile.priority if profile else 0

    def entries(self, fleet: Fleet) -> list[Entry]:
        found = {
            m: Entry(m, context_length=p.context_length, capabilities=p.capabilities)
            for m, p in self.profiles.items()
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
            for model_id, profile in self.profiles.items():
                if node.routable and feasible(profile, node):
                    found[model_id].loadable_on.append(node.name)
        coming = any(n.status in ("unknown", "starting") and not n.draining for n in fleet)
        for entry in found.values():
            entry.nodes_coming = coming
        targets = {a: self.resolve(a) for a in self.aliases}
        targets.update((p, self.resolve(t)) for p, t in self.patterns)
        for alias, target in targets.items():
            if target in found and alias not in found:
                found[alias] = _alias_entry(alias, found[target])
        return [found[k] for k in sorted(found)]

    def find(self, fleet: Fleet, name: str) -> Entry | None:
        """The entry of a name, listed or matched by a pattern alias."""
        entries = {e.id: e for e in self.entries(fleet)}
        if name in entries:
            return entries[name]
        target = entries.get(self.resolve(name))
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
