"""Model lifecycle over HTTP: single-flight loads, draining and forced unloads, RSS."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import psutil

from neuron_kernels.cpu import cpu_kernels
from tests.support.http import http

MODEL = "tiny-qwen2"


def _load_count(proc) -> float:
    text = http("GET", proc.url + "/metrics", timeout=10).text
    pattern = rf'neuron_model_load_duration_seconds_count{{model="{MODEL}"}} (\S+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_concurrent_loads_join_one_load(shared_neuron):
    before = _load_count(shared_neuron)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: shared_neuron.post("/models/load", {"model_id": MODEL}), range(4))
        )
    assert [reply.status for reply in results] == [200] * 4
    assert all(reply.json()["status"] == "ready" for reply in results)
    assert _load_count(shared_neuron) == before + 1
    (info,) = [m for m in shared_neuron.get_json("/models")["loaded"] if m["id"] == MODEL]
    # An fp32 model on the CPU keeps an fp16 cache where our attention kernel reads it.
    assert info["dtype"] == "float32"
    assert info["kv_cache_dtype"] == ("float16" if cpu_kernels() else "float32")
    assert shared_neuron.post("/models/unload", {"model_id": MODEL}).status == 200
    assert MODEL not in [m["id"] for m in shared_neuron.get_json("/models")["loaded"]]


def test_load_unload_cycles_keep_rss_bounded(shared_neuron):
    process = psutil.Process(shared_neuron.popen.pid)
    samples = []
    for _ in range(6):
        assert shared_neuron.post("/models/load", {"model_id": MODEL}).status == 200
        status, _, _ = shared_neuron.post(
            "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 2}
        )
        assert status == 200
        assert shared_neuron.post("/models/unload", {"model_id": MODEL}).status == 200
        samples.append(process.memory_info().rss)
    # One tiny model plus its 64 MB KV cache: growth over the later cycles must stay
    # far below one load's worth, or each cycle would be leaking it.
    assert samples[-1] - samples[1] < 48 * 1024 * 1024, samples


async def _stream_then_unload(proc, force: bool) -> tuple[list[bytes], int, dict]:
    body = {
        "model": MODEL,
        "prompt": "Go on.",
        "max_tokens": 40,
        "ignore_eos": True,
        "stream": True,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(proc.url + "/v1/completions", json=body) as resp:
            first = await resp.content.readline()
            unload = asyncio.create_task(
                session.post(proc.url + "/models/unload", json={"model_id": MODEL, "force": force})
            )
            lines = [first] + [line async for line in resp.content]
        done = await unload
        return (
            [line for line in lines if line.startswith(b"data: ")],
            done.status,
            await done.json(),
        )


async def test_unload_while_streaming_drains(shared_neuron):
    assert shared_neuron.post("/models/load", {"model_id": MODEL}).status == 200
    events, status, body = await _stream_then_unload(shared_neuron, force=False)
    assert status == 200 and body == {"id": MODEL, "status": "unloaded"}
    assert events[-1] == b"data: [DONE]\n"
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] == 40
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


async def test_forced_unload_cancels_the_stream(shared_neuron):
    assert shared_neuron.post("/models/load", {"model_id": MODEL}).status == 200
    events, status, _ = await _stream_then_unload(shared_neuron, force=True)
    assert status == 200
    assert events[-1] == b"data: [DONE]\n"
    assert b'"error"' in events[-2] and b"unloaded" in events[-2]
    assert MODEL not in [m["id"] for m in shared_neuron.get_json("/models")["loaded"]]
