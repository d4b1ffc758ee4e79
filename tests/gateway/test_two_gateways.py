"""Two gateways sharing one Redis in front of two neurons: a Responses chain alternating
between them, conversations kept on one node by either, one cold load fleet-wide, no
eviction from under the other gateway's requests, a request moved off a stopped node at
once, a gateway restarted under load, and Redis stopped (chat goes on, a chain is a 503).

Gateway `a` polls fast; `b` lists the neurons the other way round and polls slowly, so
without shared state the two would place a cold load on different nodes and `b` would not
see `a`'s requests in flight.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.support.affinity import key_homing_on
from tests.support.daemons import Gateway, Neuron
from tests.support.http import metric_sum, wait_until
from tests.support.redis_server import RedisServer

LLAMA = "tiny-llama"  # pinned on both nodes: the replicated model
COLD = "tiny-mistral"  # loaded by the single-flight burst
BIG_A, BIG_B = "tiny-qwen2", "tiny-qwen3"  # with COLD: each takes most of a node
SYSTEM = "You are a careful assistant who answers briefly. " * 8  # several cache blocks


@dataclass
class TwoGateways:
    n1: Neuron
    n2: Neuron
    a: Gateway
    b: Gateway
    redis: RedisServer
    models: list[dict[str, Any]]

    def gateways(self) -> tuple[Gateway, Gateway]:
        return self.a, self.b

    def neuron(self, name: str) -> Neuron:
        return self.n1 if name == "n1" else self.n2


def _start_gateway(
    procs, name: str, neurons: list[Neuron], redis: RedisServer, models: list, interval: float
) -> Gateway:
    return procs.gateway(
        neurons,
        models,
        name=name,
        state=_state(redis),
        env={"CORTEX_STATE__PASSWORD": redis.password},
        poller={"interval_seconds": interval, "timeout_seconds": 1, "unhealthy_after": 2},
        routing={"cache_affinity_margin": 16},
    )


def _start_b(procs, n1: Neuron, n2: Neuron, redis: RedisServer, models: list) -> Gateway:
    """The second gateway, which polls its nodes less often than the first."""
    return _start_gateway(procs, "b", [n2, n1], redis, models, interval=3)


def _state(redis: RedisServer) -> dict[str, Any]:
    return {"backend": "redis", "url": redis.url, "lease_seconds": 8}


@pytest.fixture(scope="module")
def fleet(procs, tmp_path_factory) -> TwoGateways:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        n1, n2 = procs.neuron("n1"), procs.neuron("n2")
        big = int(n1.capacity_mb() * 0.6)
        models = [
            {"id": LLAMA, "vram_mb": 50, "pinned_on": ["n1", "n2"]},
            *({"id": m, "vram_mb": big} for m in (COLD, BIG_A, BIG_B)),
        ]
        a = _start_gateway(procs, "a", [n1, n2], redis, models, interval=0.5)
        b = _start_b(procs, n1, n2, redis, models)
        for gateway in (a, b):
            for node in ("n1", "n2"):
                wait_until(lambda g=gateway, n=node: g.models_on(n).get(LLAMA) == "ready", 60,
                           f"{LLAMA} on {node}")  # fmt: skip
        yield TwoGateways(n1, n2, a, b, redis, models)
    finally:
        redis.stop()


def _client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


def test_a_responses_chain_alternates_between_the_gateways(fleet: TwoGateways) -> None:
    previous, tokens = None, []
    for turn in range(3):
        gateway = fleet.gateways()[turn % 2]
        response = _client(gateway).responses.create(
            model=LLAMA,
            input=f"Turn {turn + 1} of our chat.",
            previous_response_id=previous,
            max_output_tokens=5,
            temperature=0,
        )
        tokens.append(response.usage.input_tokens)
        previous = response.id
    assert tokens[0] < tokens[1] < tokens[2], tokens  # each turn carries the earlier ones
    # The other gateway reads what this one stored, input items included.
    stored = fleet.a.get(f"/v1/responses/{previous}")
    assert stored.status == 200 and stored.body["id"] == previous
    items = fleet.b.get(f"/v1/responses/{previous}/input_items").body["data"]
    assert items[0]["content"][0]["text"] == "Turn 3 of our chat."


def _turn(gateway: Gateway, messages: list[dict], key: dict) -> tuple[str, int, str]:
    body = {"model": LLAMA, "messages": messages, "max_tokens": 5, "temperature": 0, **key}
    status, reply, headers = gateway.post("/v1/chat/completions", body)
    assert status == 200, reply
    cached = reply["usage"]["prompt_tokens_details"]["cached_tokens"]
    return headers["x-cortex-node"], cached, reply["choices"][0]["message"]["content"]


def test_either_gateway_sends_a_conversation_to_the_same_node(fleet: TwoGateways) -> None:
    pick = random.Random(34)
    keys = [{"prompt_cache_key": f"conv-{i}"} if i % 2 else {} for i in range(8)]
    plans = [[pick.choice(fleet.gateways()) for _ in range(4)] for _ in keys]
    served: list[list[tuple[str, int]]] = [[] for _ in keys]

    def conversation(i: int) -> None:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Conversation {i}: topic {i * 7}."}]  # fmt: skip
        for gateway in plans[i]:
            node, cached, reply = _turn(gateway, messages, keys[i])
            served[i].append((node, cached))
            messages += [{"role": "assistant", "content": reply or "ok"},
                         {"role": "user", "content": "And then?"}]  # fmt: skip

    with ThreadPoolExecutor(len(keys)) as pool:
        list(pool.map(conversation, range(len(keys))))
    assert all(len({node for node, _ in turns}) == 1 for turns in served), served
    assert all(cached > 0 for turns in served for _, cached in turns[1:]), served
    print("conversations per node:", {n: sum(t[0][0] == n for t in served) for n in ("n1", "n2")})


def _loads(fleet: TwoGateways) -> float:
    return fleet.n1.load_count() + fleet.n2.load_count()


def test_a_burst_on_both_gateways_loads_the_model_once(fleet: TwoGateways) -> None:
    before = _loads(fleet)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: fleet.gateways()[i % 2].chat(COLD), range(8)))
    assert [r.status for r in replies] == [200] * 8, [r.body for r in replies]
    assert _loads(fleet) - before == 1
    holders = [n for n in (fleet.n1, fleet.n2) if n.loaded().get(COLD) == "ready"]
    assert len(holders) == 1
    assert {r.headers["x-cortex-node"] for r in replies} == {holders[0].name}


def _stream_in_thread(gateway: Gateway, model: str, results: dict) -> threading.Thread:
    """Stream from `model`; `results[model]` is the reply and when it had been read whole."""

    def run() -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "go"}],
                "max_tokens": 600, "stream": True, "ignore_eos": True}  # fmt: skip
        reply = gateway.post("/v1/chat/completions", body, timeout=120)
        results[model] = (reply, time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_gateway_never_evicts_what_the_other_is_serving(fleet: TwoGateways) -> None:
    a, b = fleet.a, fleet.b
    x = next(n for n in (fleet.n1, fleet.n2) if n.loaded().get(COLD) == "ready")
    y = fleet.n2 if x is fleet.n1 else fleet.n1
    status, body, headers = a.chat(BIG_A)  # no room beside COLD: the other node
    assert status == 200 and headers["x-cortex-node"] == y.name, body
    wait_until(lambda: b.models_on(y.name).get(BIG_A) == "ready", 30, "b sees it")
    streams: dict = {}
    threads = [_stream_in_thread(a, COLD, streams), _stream_in_thread(a, BIG_A, streams)]
    wait_until(lambda: x.model(COLD)["running"] and y.model(BIG_A)["running"], 30, "streaming")
    wanting: list = []
    other = threading.Thread(target=lambda: wanting.append((b.chat(BIG_B), time.monotonic())))
    other.start()  # every node is full of models a is serving: b must wait
    gone: dict[str, float] = {}  # when each model was first seen not ready
    while any(t.is_alive() for t in threads):
        now = time.monotonic()
        for node, model in ((x, COLD), (y, BIG_A)):
            if node.loaded().get(model) != "ready":
                gone.setdefault(model, now)
        time.sleep(0.1)
    assert [streams[m][0].status for m in (COLD, BIG_A)] == [200, 200]
    # Once a stream has been read whole its model may go; never before.
    for model, since in gone.items():
        assert since > streams[model][1], f"{model} unloaded while a's stream was running"
    other.join(60)
    assert wanting and wanting[0][0].status == 200, wanting
    assert wanting[0][1] > min(t for _, t in streams.values()), "b loaded before a stream ended"
    assert BIG_B in x.loaded() or BIG_B in y.loaded()


def test_a_request_leaves_a_stopped_node_at_once(fleet: TwoGateways) -> None:
    a = fleet.a
    key = key_homing_on("n1", ["n1", "n2"], kind="prompt_cache_key")
    status, _, headers = a.chat(LLAMA, prompt_cache_key=key)
    assert status == 200 and headers["x-cortex-node"] == "n1"
    fleet.n1.signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        body = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4, "prompt_cache_key": key}  # fmt: skip
        status, body, headers = a.post("/v1/chat/completions", body, timeout=90)
        took = time.monotonic() - began
    finally:
        fleet.n1.signal(signal.SIGCONT)
    print(f"failover answered in {took:.1f} s (first_byte_timeout_seconds 60)")
    assert status == 200 and headers["x-cortex-node"] == "n2", body
    assert took < 30, took  # a functional bound: the deadline alone would take 60 s
    for gateway in fleet.gateways():
        wait_until(lambda g=gateway: g.node("n1")["state"] == "up", 60, "n1 back up")
        wait_until(lambda g=gateway: g.models_on("n1").get(LLAMA) == "ready", 60, "n1 serves")


def test_restarting_one_gateway_loses_nothing_sent_to_the_other(fleet: TwoGateways, procs) -> None:
    client = _client(fleet.a)

    def stream(i: int) -> tuple[int | None, str | None]:
        tokens, finish = None, None
        for chunk in client.chat.completions.create(
            model=LLAMA,
            messages=[{"role": "user", "content": f"Stream {i}, please."}],
            max_tokens=48,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        ):
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return tokens, finish

    with ThreadPoolExecutor(32) as pool:
        running = [pool.submit(stream, i) for i in range(32)]
        wait_until(lambda: metric_sum(fleet.a.metrics(), "cortex_inflight_requests") >= 16, 60,
                   "streams under way")  # fmt: skip
        fleet.b.stop()
        fleet.b = _start_b(procs, fleet.n1, fleet.n2, fleet.redis, fleet.models)
        results = [f.result(timeout=120) for f in running]
    assert results == [(48, "length")] * 32, results
    assert fleet.b.chat(LLAMA).status == 200


def test_with_redis_stopped_chat_goes_on_and_a_chain_is_a_503(fleet: TwoGateways) -> None:
    first = _client(fleet.a).responses.create(
        model=LLAMA, input="Remember me.", max_output_tokens=3
    )
    fleet.redis.stop()
    for gateway in fleet.gateways():
        status, body, _ = gateway.chat(LLAMA)
        assert status == 200, body
        stateless = _client(gateway).responses.create(
            model=LLAMA, input="A new question.", max_output_tokens=3, store=False
        )
        assert stateless.status in ("completed", "incomplete")
        with pytest.raises(openai.APIStatusError) as info:
            _client(gateway).responses.create(
                model=LLAMA, input="And?", previous_response_id=first.id, max_output_tokens=3
            )
        assert info.value.status_code == 503
        assert "response store (redis) is unavailable" in info.value.message
    samples = fleet.a.metrics()
    assert metric_sum(samples, "cortex_state_up") == 0
    assert metric_sum(samples, "cortex_state_errors_total", operation="get_response") >= 1
    assert "is unavailable" in fleet.a.tail(400)
