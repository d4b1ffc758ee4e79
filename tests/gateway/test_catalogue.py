"""Aliases (exact, patterns, chains) and what `/v1/models` lists before any node is up."""

from __future__ import annotations

from cortex.config import ModelProfile, ModelsConfig
from cortex.fleet.nodes import Fleet, ModelOnNode, Node
from cortex.metrics import Metrics
from cortex.routing import listing
from cortex.routing.catalogue import Catalogue

ALIASES = {
    "claude-*": "general",
    "claude-haiku-*": "small",
    "claude-haiku-4-5": "exact",
    "claude-?onnet-4": "sonnet",
    "general": "repo/qwen",  # a bare repo id whose profile names a quant
    "loop-a": "loop-b",
    "loop-b": "loop-a",
}
CATALOGUE = Catalogue(
    ModelsConfig(
        models=[
            ModelProfile("repo/qwen", quant="Q4_1"),
            ModelProfile("small"),
            ModelProfile("exact"),
        ],
        aliases=ALIASES,
    )
)


def test_exact_beats_patterns_and_the_most_specific_pattern_wins() -> None:
    resolve = CATALOGUE.resolve
    assert resolve("claude-haiku-4-5") == "exact"
    assert resolve("claude-haiku-4-6") == "small"
    assert resolve("claude-sonnet-4") == "sonnet"  # more literal characters than claude-*
    assert resolve("claude-opus-4-1") == "repo/qwen:Q4_1"  # through the whole chain
    assert resolve("gpt-4o") == "gpt-4o" and resolve("repo/qwen:Q4_1") == "repo/qwen:Q4_1"


def test_a_cycle_of_aliases_stops_instead_of_looping() -> None:
    assert CATALOGUE.resolve("loop-a") in ("loop-a", "loop-b")


def _fleet(status: str) -> tuple[Fleet, Node]:
    fleet = Fleet(Metrics())
    node = fleet.add("n1", "http://x", client=None)  # type: ignore[arg-type]
    node.status = status
    return fleet, node


def test_configured_models_are_listed_with_their_status_from_the_first_moment() -> None:
    fleet, _ = _fleet("unknown")
    entries = {e.id: e for e in listing.entries(CATALOGUE, fleet)}
    assert entries["repo/qwen:Q4_1"].status == "starting"  # until the node answers
    assert entries["claude-*"].alias_of == "repo/qwen:Q4_1"
    assert entries["claude-haiku-*"].alias_of == "small"
    fleet, starting = _fleet("starting")
    starting.models["small"] = ModelOnNode("small", "loading")
    entries = {e.id: e for e in listing.entries(CATALOGUE, fleet)}
    assert entries["small"].status == "loading" and entries["claude-haiku-*"].status == "loading"


def test_a_name_only_a_pattern_matches_is_found() -> None:
    fleet, node = _fleet("up")
    node.models["small"] = ModelOnNode("small", "ready")
    entry = listing.find(CATALOGUE, fleet, "claude-haiku-9")
    assert entry is not None and entry.alias_of == "small" and entry.status == "ready"
    assert listing.find(CATALOGUE, fleet, "nothing-like-it") is None
    down, _ = _fleet("down")
    assert {e.id: e.status for e in listing.entries(CATALOGUE, down)}["small"] == "unavailable"
