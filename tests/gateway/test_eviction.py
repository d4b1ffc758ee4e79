"""Eviction on one real neuron whose memory (as planned from models.toml) holds the pinned
model and two of three others: lru, priority, pinned models kept, idle unload, and no
eviction from under requests in flight."""

from __future__ import annotations

import json
import threading
import time
from http.client import HTTPConnection

import openai
import pytest

from tests.support.http import http, metric_sum, wait_until

PINNED, LOW, HIGH, MID = "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-qwen3"


@pytest.fixture(scope="module")
def neuron(procs):
    return procs.neuron("e1")


@pytest.fixture
def catalogue(neuron) -> list[dict]:
    """Sizes as fractions of the node: pinned 10%, others 35% each (only two fit)."""
    capacity = neuron.capacity_mb()
    return [
        {"id": PINNED, "vram_mb": int(capacity * 0.10), "pinned_on": ["e1"]},
        {"id": LOW, "vram_mb": int(capacity * 0.35), "priority": 1},
        {"id": HIGH, "vram_mb": int(capacity * 0.35), "priority": 5},
        {"id": MID, "vram_mb": int(capacity * 0.35), "priority": 3},
    ]


@pytest.fixture
def gateway_for(procs, neuron, catalogue):
    """Start a gateway with the given eviction settings; afterwards leave only the pinned model."""
    started = []

    def start(routing: dict | None = None, **eviction):
        gateway = procs.gateway(
            [neuron],
            catalogue,
            name=f"evict{len(started)}",
            eviction=eviction,
            **({"routing": routing} if routing else {}),
        )
        started.append(gateway)
        wait_until(lambda: neuron.loaded().get(PINNED) == "ready", 60, "pinned model loaded")
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
    for model in set(neuron.loaded()) - {PINNED}:
        http("POST", neuron.url + "/models/unload", {"model_id": model})


def use(gateway, *models: str) -> None:
    for model in models:
        status, body, _ = gateway.chat(model, max_tokens=2)
        assert status == 200, body


@pytest.mark.parametrize(("strategy", "victim"), [("lru", HIGH), ("priority", LOW)])
def test_eviction_strategy(gateway_for, neuron, strategy: str, victim: str) -> None:
    gateway = gateway_for(strategy=strategy)
    # LOW (priority 1) is the most recently used, HIGH (priority 5) the least.
    use(gateway, LOW, HIGH, LOW)
    assert set(neuron.loaded()) == {PINNED, LOW, HIGH}
    use(gateway, MID)
    survivor = ({LOW, HIGH} - {victim}).pop()
    assert set(neuron.loaded()) == {PINNED, MID, survivor}
    metrics = gateway.metrics()
    assert metric_sum(metrics, "cortex_evictions_total", model=victim, reason="capacity") == 1
    assert metric_sum(metrics, "cortex_evictions_total") == 1
    assert metric_sum(metrics, "cortex_model_loaded", model=victim) == 0
    assert metric_sum(metrics, "cortex_model_loaded", model=MID) == 1


def test_pinned_is_kept_loaded(gateway_for, neuron) -> None:
    gateway = gateway_for(strategy="lru")
    use(gateway, LOW, HIGH, MID, LOW)  # two evictions; the pinned model is never a victim
    assert PINNED in neuron.loaded()
    status, body, _ = gateway.post("/admin/models/unload", {"model": PINNED})
    assert status == 409 and "pinned" in body["error"]["message"]
    # Unloaded behind the gateway's back (as a neuron restart would): loaded again.
    http("POST", neuron.url + "/models/unload", {"model_id": PINNED})
    wait_until(lambda: neuron.loaded().get(PINNED) == "ready", 30, "pinned model reloaded")


def test_idle_unload(gateway_for, neuron) -> None:
    gateway = gateway_for(strategy="lru", idle_unload_seconds=2)
    use(gateway, LOW)
    assert LOW in neuron.loaded()
    wait_until(lambda: LOW not in neuron.loaded(), 30, "idle model unloaded")
    metrics = gateway.metrics()
    assert metric_sum(metrics, "cortex_evictions_total", model=LOW, reason="idle") == 1
    time.sleep(2.5)
    assert PINNED in neuron.loaded(), "pinned models are never idle-unloaded"


def test_no_eviction_under_inflight_requests(gateway_for, neuron) -> None:
    gateway = gateway_for(strategy="lru")
    use(gateway, LOW, HIGH)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    finished: dict[str, tuple[float, str | None, int]] = {}
    started = threading.Barrier(3)

    def stream(model: str) -> None:
        chunks, reason = 0, None
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=40,
            temperature=0,
            stream=True,
        )
        for chunk in response:
            if chunks == 0:
                started.wait()
            chunks += 1
            reason = chunk.choices[0].finish_reason if chunk.choices else reason
        finished[model] = (time.monotonic(), reason, chunks)

    threads = [threading.Thread(target=stream, args=(m,)) for m in (LOW, HIGH)]
    for thread in threads:
        thread.start()
    started.wait()  # both streams are running: neither model may be evicted now
    status, body, _ = gateway.chat(MID, max_tokens=2)
    loaded_at = time.monotonic()
    for thread in threads:
        thread.join()
    assert status == 200, body
    assert all(reason in ("length", "stop") for _, reason, _ in finished.values()), finished
    assert loaded_at > min(end for end, _, _ in finished.values())
    assert MID in neuron.loaded() and PINNED in neuron.loaded()


def test_defrag_restarts_the_node_after_cycles(gateway_for, neuron) -> None:
    gateway = gateway_for(strategy="lru", defrag_after_cycles=2)
    _, health, _ = http("GET", neuron.url + "/health")
    for _ in range(2):
        use(gateway, LOW)
        status, body, _ = gateway.post("/admin/models/unload", {"model": LOW})
        assert status == 200 and body["nodes"] == ["e1"], body

    def restarted():
        try:
            return (
                http("GET", neuron.url + "/health", timeout=2).body["uptime_seconds"]
                < health["uptime_seconds"]
            )
        except OSError:
            return False

    wait_until(restarted, 90, "neuron restarted through /admin/restart")
    assert neuron.popen.poll() is None, "the neuron re-executes itself in place"
    wait_until(lambda: gateway.node("e1")["state"] == "up", 60, "node back up")
    wait_until(lambda: neuron.loaded().get(PINNED) == "ready", 60, "pinned model back")
    assert gateway.node("e1")["cycles"] == 0
    use(gateway, LOW)


def test_bounded_waiting_when_nothing_can_be_evicted(gateway_for, neuron) -> None:
    """Both evictable models busy: one waiter is allowed (503 after the wait), more get 429,
    and a waiter whose client hangs up leaves the queue at once."""
    gateway = gateway_for(strategy="lru", routing={"max_wait_seconds": 3, "max_waiting": 1})
    use(gateway, LOW, HIGH)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    # Streams that outlast the test: no early EOS, as many tokens as the context allows.
    streams = [
        client.chat.completions.create(
            model=m,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4000,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        for m in (LOW, HIGH)
    ]
    body = json.dumps({"model": MID, "messages": [{"role": "user", "content": "hi"}]})
    try:
        for stream in streams:
            next(iter(stream))  # both are generating now
        leaver = HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        leaver.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        wait_until(lambda: gateway.fleet()["waiting"].get(MID) == 1, 10, "one waiter")
        status, body_, headers = gateway.chat(MID)
        assert status == 429 and body_["error"]["type"] == "rate_limit_error"
        assert int(headers["Retry-After"]) >= 1
        leaver.close()
        wait_until(lambda: not gateway.fleet()["waiting"], 4, "the leaver left the queue")

        status, body_, headers = gateway.chat(MID)
        assert status == 503 and "not available yet" in body_["error"]["message"]
        assert int(headers["Retry-After"]) >= 1
        assert set(neuron.loaded()) == {PINNED, LOW, HIGH}, "nothing evicted under the streams"
    finally:
        for stream in streams:
            stream.close()
