"""Cache-aware routing on its own: conversation keys, hits, overrides, forgetting, spread."""

from __future__ import annotations

from cortex.fleet.nodes import Fleet, ModelOnNode, Node
from cortex.metrics import Metrics
from cortex.routing.affinity import Affinity, conversation_key

MODEL = "m"
FLEET = Fleet(Metrics())


def node(name: str, inflight: int = 0, loaded_at: float = 1.0) -> Node:
    n = FLEET.add(name, f"http://{name}", client=None)  # type: ignore[arg-type]
    n.models[MODEL] = ModelOnNode(MODEL, loaded_at=loaded_at)
    n.inflight[MODEL] = inflight
    return n


def by_load(*nodes: Node) -> list[Node]:
    """What Fleet.holders hands the router: least in flight first."""
    return sorted(nodes, key=lambda n: n.inflight[MODEL])


def test_explicit_keys_win_over_the_digest_in_order() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    assert (
        conversation_key({**chat, "prompt_cache_key": "k", "user": "u"}, {}) == "prompt_cache_key:k"
    )
    assert conversation_key({**chat, "user": "u"}, {"session-id": "s"}) == "session:s"
    assert conversation_key({**chat, "metadata": {"user_id": "a"}}, {}) == "user_id:a"
    assert conversation_key({**chat, "user": "u"}, {}) == "user:u"
    assert conversation_key({"model": "m"}, {}) is None


def test_the_digest_is_the_conversation_start_not_its_later_turns() -> None:
    start = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    later = [*start, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    key = conversation_key({"messages": start}, {})
    assert key.startswith("digest:")
    assert conversation_key({"messages": later}, {}) == key
    other = [start[0], {"role": "user", "content": "bye"}]
    assert conversation_key({"messages": other}, {}) != key
    # Anthropic's top-level system and the Responses API's instructions and input count too.
    assert conversation_key({"system": "x", "messages": start[1:]}, {}) != conversation_key(
        {"system": "y", "messages": start[1:]}, {}
    )
    responses = {"instructions": "i", "input": [{"role": "user", "content": "q"}]}
    grown = {**responses, "input": [*responses["input"], {"type": "function_call_output"}]}
    assert conversation_key(responses, {}) == conversation_key(grown, {})
    assert conversation_key({"prompt": "abc"}, {}) != conversation_key({"prompt": "abd"}, {})


def test_a_conversation_returns_until_its_node_is_too_busy() -> None:
    affinity = Affinity(margin=2)
    a, b = node("a"), node("b")
    first, outcome = affinity.choose(MODEL, "c1", by_load(a, b))
    assert (first.name, outcome) == ("a", "miss")
    first.inflight[MODEL] = 2  # busier by the margin: still its node
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (a, "hit")
    first.inflight[MODEL] = 3  # busier by more than the margin
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (b, "override")
    a.inflight[MODEL] = 0
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (b, "hit")  # b holds it now


def test_new_conversations_spread_over_idle_nodes() -> None:
    affinity = Affinity(margin=4)
    a, b = node("a"), node("b")
    chosen = [affinity.choose(MODEL, f"c{i}", by_load(a, b))[0].name for i in range(6)]
    assert sorted(chosen) == ["a"] * 3 + ["b"] * 3
    assert affinity.conversations(MODEL, "a") == affinity.conversations(MODEL, "b") == 3


def test_a_node_that_left_or_reloaded_is_forgotten() -> None:
    affinity = Affinity(margin=4)
    a, b = node("a"), node("b")
    assert affinity.choose(MODEL, "c", [a, b])[0] is a
    assert affinity.choose(MODEL, "c", [b]) == (b, "miss")  # a is down or unloaded the model
    assert affinity.conversations(MODEL, "a") == 0
    assert affinity.choose(MODEL, "c", [a, b]) == (b, "hit")
    b.models[MODEL] = ModelOnNode(MODEL, loaded_at=2.0)  # reloaded: its cache is gone
    assert affinity.choose(MODEL, "c", [a, b]) == (a, "miss")


def test_the_table_is_bounded() -> None:
    affinity = Affinity(margin=4, capacity=3)
    a = node("a")
    for i in range(5):
        affinity.choose(MODEL, f"c{i}", [a])
    assert affinity.conversations(MODEL, "a") == 3
    assert affinity.choose(MODEL, "c0", [a])[1] == "miss"
    assert affinity.choose(MODEL, "c4", [a])[1] == "hit"
