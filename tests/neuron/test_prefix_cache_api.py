"""The prefix cache over HTTP: cached prompt tokens in usage (streamed too), the per-model
switch in the load request, figures in /models and counters in /metrics."""

from __future__ import annotations

import json
import re
import urllib.request

from tests.neuron.conftest import get_json, loaded, post

SYSTEM = "You answer questions about the weather in short sentences. " * 8


def chat(proc, model: str, question: str, **extra) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "max_tokens": 3,
        "temperature": 0,
        **extra,
    }
    status, reply = post(proc, "/v1/chat/completions", body)
    assert status == 200, reply
    return reply["usage"]


def streamed_usage(proc, model: str, question: str) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = urllib.request.Request(
        proc.url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        events = [line[6:] for line in resp.read().decode().splitlines() if line[:6] == "data: "]
    usages = [json.loads(e)["usage"] for e in events if e != "[DONE]" and '"usage"' in e]
    return [u for u in usages if u][-1]


def counter(proc, name: str, model: str) -> float:
    with urllib.request.urlopen(proc.url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
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
    figures = loaded(shared_neuron, model)["prefix_cache"]
    assert figures["enabled"] is True and figures["cached_blocks"] >= shared_blocks // 16
    assert figures["hit_tokens"] >= 2 * shared_blocks


def test_the_cache_can_be_turned_off_per_model(shared_neuron) -> None:
    model = "tiny-qwen2"
    status, body = post(shared_neuron, "/models/load", {"model_id": model, "prefix_cache": "no"})
    assert status == 400 and "prefix_cache" in body["error"]["message"]
    status, entry = post(shared_neuron, "/models/load", {"model_id": model, "prefix_cache": False})
    assert status == 200, entry
    try:
        for question in ("Sunny in Rome?", "Sunny in Rome?"):
            assert (
                chat(shared_neuron, model, question)["prompt_tokens_details"]["cached_tokens"] == 0
            )
        figures = loaded(shared_neuron, model)["prefix_cache"]
        assert figures == {
            "enabled": False,
            "cached_blocks": 0,
            "queried_tokens": 0,
            "hit_tokens": 0,
        }
    finally:
        assert post(shared_neuron, "/models/unload", {"model_id": model})[0] == 200
    assert model not in [m["id"] for m in get_json(shared_neuron, "/models")["loaded"]]
