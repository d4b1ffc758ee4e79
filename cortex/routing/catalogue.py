"""The model catalogue: profiles from models.toml and aliases (what the fleet holds is
listed by `cortex.routing.listing`, which sits above both this and placement).

Aliases may be patterns (`"claude-*" = "qwen3-8b"`, shell-style `*`, `?`, `[…]`); an
exact alias beats any pattern, and among patterns the most specific (the most
literal characters) wins. Chains resolve fully (an alias to an alias to a bare repo
id whose profile is `repo:Q4_1`), a cycle stops where it would repeat.
"""

from __future__ import annotations

import fnmatch

from cortex.config import ModelProfile, ModelsConfig

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
