"""Continuous batching seen from outside: concurrent streams, disconnects, block accounting."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai
import pytest

from neuron.demo import DEMO_MODEL_ID


def _blocks(proc, model: str) -> tuple[int, int, int]:
    info = proc.model(model)
    return info["kv_blocks"]["free"], info["kv_blocks"]["total"], info["running"]


def _wait_blocks_free(proc, model: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        free, total, running = _blocks(proc, model)
        if free == total and running == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"blocks not returned: {_blocks(proc, model)}")


@pytest.mark.parametrize(
    ("model", "streams", "tokens"), [("tiny-llama", 16, 8), (DEMO_MODEL_ID, 4, 3)]
)
async def test_concurrent_greedy_streams_match_sequential(shared_neuron, model, streams, tokens):
    prompts = [f"Story number {i}: once upon a time" for i in range(streams)]
    free_before, total, _ = _blocks(shared_neuron, model)
    assert free_before == total
    async with openai.AsyncOpenAI(
        base_url=shared_neuron.url + "/v1", api_key="x", max_retries=0
    ) as client:

        async def run(prompt: str) -> str:
            stream = await client.completions.create(
                model=model, prompt=prompt, max_tokens=tokens, temperature=0, stream=True
            )
            return "".join([c.choices[0].text async for c in stream])

        sequential = [await run(p) for p in prompts]
        concurrent = await asyncio.gather(*(run(p) for p in prompts))
    assert concurrent == sequential
    assert all(sequential)
    _wait_blocks_free(shared_neuron, model)


async def test_client_disconnect_frees_the_sequence(shared_neuron):
    body = {
        "model": "tiny-llama",
        "prompt": "Tell me everything.",
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(shared_neuron.url + "/v1/completions", json=body) as resp,
    ):
        assert resp.status == 200
        seen = 0
        async for line in resp.content:
            seen += line.startswith(b"data: ")
            if seen >= 3:
                break
        free, total, running = _blocks(shared_neuron, "tiny-llama")
        assert running == 1 and free < total
    # Leaving the block closes the connection mid-stream.
    _wait_blocks_free(shared_neuron, "tiny-llama")
