"""Two real neurons holding one model behind a gateway: a conversation's turns go back
to the node that holds its prefix, reuse it (cached tokens in usage, both dialects),
and conversations still spread over both nodes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from tests.support.http import http, metric_sum, wait_until

MODEL = "tiny-llama"
BLOCK = 16  # the neuron's default block size
SYSTEM = "You are a careful assistant. " * 12  # a prefix longer than a few blocks


@pytest.fixture(scope="module")
def fleet(procs):
    n1, n2 = procs.neurons_holding(MODEL, "n1", "n2")
    gateway = procs.gateway([n1, n2], [], routing={"cache_affinity_margin": 4})
    wait_until(
        lambda: all(gateway.models_on(n).get(MODEL) == "ready" for n in ("n1", "n2")),
        30,
        "the model ready on both nodes",
    )
    return n1, n2, gateway


def openai_turn(gateway, messages: list[dict], **extra) -> tuple[str, dict, str]:
    """(node, usage, reply) of one non-streamed chat turn."""
    sent_headers = extra.pop("h", {})
    body = {"model": MODEL, "messages": messages, "max_tokens": 6, "temperature": 0, **extra}
    status, reply, headers = gateway.post("/v1/chat/completions", body, headers=sent_headers)
    assert status == 200, reply
    return headers["x-cortex-node"], reply["usage"], reply["choices"][0]["message"]["content"]


def test_a_three_turn_conversation_reuses_each_previous_prompt(fleet) -> None:
    _n1, _n2, gateway = fleet
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Turn one."}]
    previous, nodes = None, set()
    for turn in range(3):
        node, usage, reply = openai_turn(gateway, messages)
        nodes.add(node)
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        if previous is None:
            assert 0 <= cached < usage["prompt_tokens"]
        else:
            assert cached >= previous - BLOCK, (turn, cached, previous)
        previous = usage["prompt_tokens"]
        messages += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"Turn {turn + 2}, please go on."},
        ]
    assert len(nodes) == 1


def test_an_anthropic_conversation_reads_its_prefix_from_the_cache(fleet) -> None:
    _n1, _n2, gateway = fleet
    client = anthropic.Anthropic(base_url=gateway.url, api_key="none", max_retries=0)
    before = metric_sum(gateway.metrics(), "cortex_cache_affinity_total", outcome="hit")
    messages = [{"role": "user", "content": "An Anthropic turn, the first."}]
    previous = None
    for turn in range(3):
        reply = client.messages.create(
            model=MODEL,
            max_tokens=6,
            system=SYSTEM,
            messages=messages,
            metadata={"user_id": "anthropic-conversation"},
        )
        usage = reply.usage
        whole = (
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        )
        if previous is not None:
            assert usage.cache_read_input_tokens >= previous - BLOCK, (turn, usage, previous)
        previous = whole
        text = "".join(b.text for b in reply.content if b.type == "text") or "ok"
        messages += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Turn {turn + 2}."},
        ]
    hits = metric_sum(gateway.metrics(), "cortex_cache_affinity_total", outcome="hit")
    assert hits - before == 2  # turns 2 and 3 went back to the node of turn 1


def test_eight_conversations_keep_their_nodes_and_share_the_fleet(fleet) -> None:
    n1, _n2, gateway = fleet
    # Every way a client names its conversation, and plain ones known by their start.
    keys = [
        {"prompt_cache_key": "pck-1"},
        {"user": "user-2"},
        {"h": {"session-id": "codex-3"}},
        {"prompt_cache_key": "pck-4"},
        {},
        {},
        {},
        {},
    ]
    histories = [
        [{"role": "user", "content": f"Conversation {i}: tell me about topic {i * 7}."}]
        for i in range(len(keys))
    ]
    served: list[list[str]] = [[] for _ in keys]

    def turn(i: int) -> None:
        extra = dict(keys[i])
        node, _usage, reply = openai_turn(gateway, histories[i], **extra)
        served[i].append(node)
        histories[i] += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "And then?"},
        ]

    with ThreadPoolExecutor(len(keys)) as pool:
        for _ in range(4):
            list(pool.map(turn, range(len(keys))))
    assert all(len(set(nodes)) == 1 and len(nodes) == 4 for nodes in served), served
    counts = {name: sum(nodes[0] == name for nodes in served) for name in ("n1", "n2")}
    print(f"conversations per node: {counts}")
    assert max(counts.values()) <= 6, counts

    # A node that unloads the model is forgotten: its conversations move and stay moved.
    moved = [i for i, nodes in enumerate(served) if nodes[0] == "n1"]
    status, _, _ = http("POST", n1.url + "/models/unload", {"model_id": MODEL})
    assert status == 200
    wait_until(lambda: MODEL not in gateway.models_on("n1"), 30, "the gateway saw the unload")
    before = metric_sum(gateway.metrics(), "cortex_cache_affinity_total", outcome="miss")
    for i in moved:
        turn(i)
        turn(i)
    assert all(served[i][-2:] == ["n2", "n2"] for i in moved)
    misses = metric_sum(gateway.metrics(), "cortex_cache_affinity_total", outcome="miss")
    assert misses - before == len(moved)
