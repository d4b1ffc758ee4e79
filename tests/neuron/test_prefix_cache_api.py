"""The prefix cache over HTTP: cached prompt tokens in usage (streamed too), the per-model
switch in the load request, figures in /models and counters in /metrics."""

from __future__ import annotations

import json
import re

from tests.support.http import http

SYSTEM = "You answer questions about the weather in short sentences. " * 8


def chat(proc, model: str, question: str, **extra) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "max_tokens": 3,
        "temperature": 0,
        **extra,
    }
    reply = proc.post("/v1/chat/completions", body)
    assert reply.status == 200, reply.text
    return reply.json()["usage"]


def streamed_usage(proc, model: str, question: str) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = proc.post("/v1/chat/completions", body)
    assert reply.status == 200, reply.text
    events = [line[6:] for line in reply.text.splitlines() if line[:6] == "data: "]
    usages = [json.loads(e)["usage"] for e in events if e != "[DONE]" and '"usage"' in e]
    return [u for u in usages if u][-1]


def counter(proc, name: str, model: str) -> float:
    text = http("GET", proc.url + "/metrics", timeout=30).text
    found = re.search(rf'^{name}{{model="{re.escape(model)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_repeated_prefix_is_reported_as_cached(shared_neuron) -> None:
    model = "tiny-llama"
    hits = counter(shared_neuron, "neuron_prefix_cache_hits_tokens_total", model)
    first = chat(shared_neuron, model, "Is it raining in Oslo today?")
    second = chat(shared_neuron, model, "Is it snowing in Bergen?")
    streamed = streamed_usage(shared_neuron, model, "Is it windy in Tromsø?")
    # The system turn is shared: every full 16-token block of it comes from the cache.
    shared_blocks = second["prompt_tokens_details"]["cached_tokens"]
    assert shared_blocks >= 64 and shared_blocks % 16 == 0
    assert streamed["prompt_tokens_details"]["cached_tokens"] == shared_blocks
    assert first["prompt_tokens_details"]["cached_tokens"] <= shared_blocks
    repeat = chat(shared_neuron, model, "Is it raining in Oslo today?")
    assert repeat["prompt_tokens_details"]["cached_tokens"] >= first["prompt_tokens"] - 16
    after = counter(shared_neuron, "neuron_prefix_cache_hits_tokens_total", model)
    assert after - hits >= 2 * shared_blocks
    figures = shared_neuron.model(model)["prefix_cache"]
    assert figures["enabled"] is True and figures["cached_blocks"] >= shared_blocks // 16
    assert figures["hit_tokens"] >= 2 * shared_blocks


def test_the_cache_can_be_turned_off_per_model(shared_neuron) -> None:
    model = "tiny-qwen2"
    bad = shared_neuron.post("/models/load", {"model_id": model, "prefix_cache": "no"})
    assert bad.status == 400 and "prefix_cache" in bad.json()["error"]["message"]
    entry = shared_neuron.post("/models/load", {"model_id": model, "prefix_cache": False})
    assert entry.status == 200, entry.text
    try:
        for question in ("Sunny in Rome?", "Sunny in Rome?"):
            assert (
                chat(shared_neuron, model, question)["prompt_tokens_details"]["cached_tokens"] == 0
            )
        figures = shared_neuron.model(model)["prefix_cache"]
        assert figures == {
            "enabled": False,
            "cached_blocks": 0,
            "queried_tokens": 0,
            "hit_tokens": 0,
        }
    finally:
        assert shared_neuron.post("/models/unload", {"model_id": model}).status == 200
    assert model not in shared_neuron.loaded()
