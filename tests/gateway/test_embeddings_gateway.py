"""Embeddings, rerank and fill-in-the-middle through the gateway with the openai SDK:
routing with cold loads, capabilities in the catalogue, refusals before any node."""

from __future__ import annotations

import threading
import time

import openai
import pytest
import torch

from tests.support.http import metric_sum
from tests.support.tiny_pooling import (
    BEST,
    DOCUMENTS,
    QUERY,
    make_embedding_model,
    make_fim_model,
    make_reranker,
)

EMBED, CHAT = "tiny-qwen3-embed-last", "tiny-llama"
RERANKER, CODER, CHAT_ONLY = "tiny-qwen3-reranker", "tiny-qwen3-coder", "tiny-qwen2"


@pytest.fixture(scope="module")
def gateway(procs, models_root):
    make_embedding_model(models_root, EMBED, "lasttoken")
    make_reranker(models_root)
    make_fim_model(models_root)
    neuron = procs.neuron("e1")
    models = [{"id": m, "vram_mb": 100} for m in (EMBED, CHAT, RERANKER, CODER)]
    models.append({"id": CHAT_ONLY, "vram_mb": 100, "capabilities": ["chat"]})
    return procs.gateway([neuron], models, routing={"keepalive_seconds": 0.05})


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


def test_float_base64_dimensions_and_token_ids(client, gateway) -> None:
    texts = ["a first input", "and a second, longer one than the first"]
    floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    packed = client.embeddings.create(model=EMBED, input=texts)  # the SDK asks for base64
    assert [d.embedding for d in floats.data] == [d.embedding for d in packed.data]
    assert len(floats.data[0].embedding) == 64 and floats.usage.prompt_tokens > 0
    short = client.embeddings.create(model=EMBED, input=texts[0], dimensions=16)
    vector = torch.tensor(short.data[0].embedding)
    assert len(vector) == 16 and abs(vector.norm() - 1) < 1e-5
    head = torch.nn.functional.normalize(torch.tensor(floats.data[0].embedding[:16]), dim=0)
    assert torch.allclose(vector, head, atol=1e-5)  # alone vs in a batch of two
    ids = client.embeddings.create(model=EMBED, input=[[11, 12, 13], [14]])
    assert ids.usage.prompt_tokens == 4 and len(ids.data) == 2
    listed = {m["id"]: m for m in gateway.get("/v1/models").json()["data"]}
    assert "embeddings" in listed[EMBED]["capabilities"]
    assert listed[CHAT_ONLY]["capabilities"] == ["chat"]


def test_embedding_during_a_chat_stream(client) -> None:
    client.embeddings.create(model=EMBED, input="warm")  # loaded: no cold start below
    client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=1
    )
    stream = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=1000,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    arrivals: list[tuple[float, object]] = []
    first = threading.Event()

    def consume() -> None:
        for chunk in stream:
            arrivals.append((time.monotonic(), chunk))
            first.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert first.wait(60)
    reply = client.embeddings.create(model=EMBED, input=["while a stream runs"] * 4)
    answered = time.monotonic()
    reader.join(120)
    assert len(reply.data) == 4 and reply.data[3].index == 3
    assert arrivals[-1][1].usage.completion_tokens == 1000
    assert any(at > answered for at, _ in arrivals), "the embedding waited for the stream"


def test_rerank_and_infill(client, gateway) -> None:
    body = {"model": RERANKER, "query": QUERY, "documents": list(DOCUMENTS), "top_n": 2}
    status, reply, _ = gateway.post("/v1/rerank", body)
    assert status == 200, reply
    assert reply["results"][0]["index"] == BEST and len(reply["results"]) == 2
    prefix, suffix = "def mul(a, b):\n    return ", "\n"
    completion = client.completions.create(
        model=CODER, prompt=prefix, suffix=suffix, max_tokens=6, temperature=0
    )
    infill = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 6, "temperature": 0}
    status, filled, _ = gateway.post("/infill", {"model": CODER, **infill})
    assert status == 200 and filled["content"] == completion.choices[0].text
    status, defaulted, _ = gateway.post("/infill", infill)  # the one FIM model known
    assert status == 200 and defaulted["content"] == filled["content"]
    samples = gateway.metrics()
    for dialect in ("embeddings", "rerank", "infill"):
        assert metric_sum(samples, "cortex_requests_total", dialect=dialect, code="200") > 0


def test_missing_capability_is_refused_before_any_node(client, gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=CHAT_ONLY, input="x")
    assert "does not serve embeddings" in info.value.message
    assert CHAT_ONLY not in gateway.models_on("e1")
    client.embeddings.create(model=EMBED, input="x")  # loaded: the node said what it serves
    status, reply, _ = gateway.post(
        "/v1/rerank", {"model": EMBED, "query": "q", "documents": ["d"]}
    )
    assert status == 400 and "does not serve rerank" in reply["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=EMBED, prompt="x", suffix="y", max_tokens=2)
    samples = gateway.metrics()
    assert metric_sum(samples, "cortex_requests_total", dialect="rerank", code="400") >= 1
