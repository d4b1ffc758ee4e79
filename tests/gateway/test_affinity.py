"""Cache-aware routing on its own: conversation keys, rendezvous choice (the same in every
gateway), hits, overrides, reloads, spread."""

from __future__ import annotations

from cortex.fleet.nodes import Fleet, ModelOnNode, Node
from cortex.metrics import Metrics
from cortex.routing.affinity import Affinity, conversation_key, rendezvous_weight

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


def home(key: str, *nodes: Node) -> Node:
    """The conversation's rendezvous node among `nodes`, by its definition."""
    return max(nodes, key=lambda n: rendezvous_weight(key, n.name))


def test_a_conversation_returns_until_its_node_is_too_busy() -> None:
    affinity = Affinity(margin=2)
    a, b = node("a"), node("b")
    first, outcome = affinity.choose(MODEL, "c1", by_load(a, b))
    assert (first, outcome) == (home("c1", a, b), "miss")
    other = b if first is a else a
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (first, "hit")
    first.inflight[MODEL] = 2  # busier by the margin: still its node
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (first, "hit")
    first.remote_inflight[MODEL] = 1  # another gateway's request tips it over the margin
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (other, "override")
    first.inflight[MODEL] = first.remote_inflight[MODEL] = 0
    assert affinity.choose(MODEL, "c1", by_load(a, b)) == (first, "miss")  # back, re-read


def test_two_gateways_agree_without_sharing_anything() -> None:
    """Rendezvous hashing: the same key picks the same node in every gateway, whatever
    order the holders come in, and keys spread over the nodes."""
    nodes = [node(f"r{i}") for i in range(3)]
    one, two = Affinity(margin=4), Affinity(margin=4)
    picked = []
    for i in range(300):
        key = f"conversation-{i}"
        mine = one.choose(MODEL, key, nodes)[0]
        assert two.choose(MODEL, key, list(reversed(nodes)))[0] is mine
        picked.append(mine.name)
    counts = sorted(picked.count(n.name) for n in nodes)
    assert counts[0] > 60, counts  # about 100 each


def test_only_the_conversations_of_a_node_that_left_move() -> None:
    affinity = Affinity(margin=4)
    a, b, c = node("a"), node("b"), node("c")
    keys = [f"k{i}" for i in range(60)]
    before = {k: affinity.choose(MODEL, k, [a, b, c])[0] for k in keys}
    after = {k: affinity.choose(MODEL, k, [a, b])[0] for k in keys}  # c is down
    assert all(after[k] is before[k] for k in keys if before[k] is not c)
    assert {after[k].name for k in keys if before[k] is c} <= {"a", "b"}


def test_a_node_that_reloaded_is_a_miss() -> None:
    affinity = Affinity(margin=4)
    a, b = node("a"), node("b")
    first = affinity.choose(MODEL, "c", [a, b])[0]
    assert affinity.choose(MODEL, "c", [a, b]) == (first, "hit")
    first.models[MODEL] = ModelOnNode(MODEL, loaded_at=2.0)  # reloaded: its cache is gone
    assert affinity.choose(MODEL, "c", [a, b]) == (first, "miss")


def test_the_table_is_bounded() -> None:
    affinity = Affinity(margin=4, capacity=3)
    a = node("a")
    for i in range(5):
        affinity.choose(MODEL, f"c{i}", [a])
    assert affinity.choose(MODEL, "c0", [a])[1] == "miss"
    assert affinity.choose(MODEL, "c4", [a])[1] == "hit"
