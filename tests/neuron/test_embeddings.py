"""Embeddings, rerank and fill-in-the-middle on a real neuron, against transformers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from neuron.demo import DEMO_MODEL_ID
from tests.support.daemons import Neuron, start_neuron
from tests.support.tiny_pooling import (
    BEST,
    DOCUMENTS,
    QUERY,
    QWEN_FIM,
    make_cross_encoder,
    make_embedding_model,
    make_fim_model,
    make_reranker,
)

LAST, MEAN = "tiny-qwen3-embed-last", "tiny-qwen3-embed-mean"
RERANKER, CODER = "tiny-qwen3-reranker", "tiny-qwen3-coder"
CROSS = "tiny-qwen3-cross-encoder"
TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n" * 3,
    "Qwen3 pools the last token; others average every token of the input. " * 4,
]


@pytest.fixture(scope="module")
def folders(neuron_models: Path) -> dict[str, Path]:
    return {
        LAST: make_embedding_model(neuron_models, LAST, "lasttoken"),
        MEAN: make_embedding_model(neuron_models, MEAN, "mean_tokens"),
        RERANKER: make_reranker(neuron_models),
        CODER: make_fim_model(neuron_models),
        CROSS: make_cross_encoder(neuron_models),
    }


@pytest.fixture(scope="module")
def neuron(folders, neuron_models: Path, tmp_path_factory) -> Iterator[Neuron]:
    proc = start_neuron(
        tmp_path_factory.mktemp("embed-neuron"),
        neuron_models,
        [LAST, MEAN, RERANKER, CODER, CROSS],
    )
    yield proc
    assert proc.stop() == 0, proc.tail()


def _embed(neuron: Neuron, model: str, inputs, **extra) -> list[list[float]]:
    status, body, _ = neuron.post("/v1/embeddings", {"model": model, "input": inputs, **extra})
    assert status == 200, body
    assert [d["index"] for d in body["data"]] == list(range(len(body["data"])))
    return [d["embedding"] for d in body["data"]]


def _reference(folder: Path, texts: list[str], mode: str) -> list[torch.Tensor]:
    """transformers' final hidden states (after the last norm), pooled, normalised."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32)
    out = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            states = model(ids).last_hidden_state[0]
            pooled = states[-1] if mode == "last" else states.mean(0)
            out.append(torch.nn.functional.normalize(pooled, dim=0))
    return out


@pytest.mark.parametrize(("model", "mode"), [(LAST, "last"), (MEAN, "mean")])
def test_pooling_matches_transformers(neuron, folders, model, mode) -> None:
    ours = _embed(neuron, model, TEXTS)
    for got, want in zip(ours, _reference(folders[model], TEXTS, mode), strict=True):
        cosine = torch.nn.functional.cosine_similarity(torch.tensor(got), want, dim=0)
        assert cosine >= 0.9999, (model, float(cosine))
        assert abs(torch.tensor(got).norm() - 1) < 1e-4
    pooling = neuron.model(model)["pooling"]
    assert pooling == {"mode": mode, "normalize": True, "source": "sentence-transformers"}


def test_batch_keeps_order_and_equals_each_alone(neuron) -> None:
    inputs = [" ".join(["word"] * (1 + 7 * i)) + f" {i}" for i in range(16)]
    together = _embed(neuron, MEAN, inputs)
    for text, vector in zip(inputs, together, strict=True):
        (alone,) = _embed(neuron, MEAN, text)
        assert torch.allclose(torch.tensor(vector), torch.tensor(alone), atol=1e-5)
    assert len({round(v[0], 6) for v in together}) == 16, "distinct inputs, distinct vectors"


def test_token_ids_dimensions_and_usage(neuron) -> None:
    status, body, _ = neuron.post("/v1/embeddings", {"model": LAST, "input": [[5, 6, 7], [8]]})
    assert status == 200 and body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    (short,) = _embed(neuron, LAST, [[5, 6, 7]], dimensions=8)
    full = torch.tensor(body["data"][0]["embedding"])
    assert len(short) == 8 and len(full) == 64
    assert torch.allclose(torch.tensor(short), torch.nn.functional.normalize(full[:8], dim=0))


def test_bad_embedding_requests(neuron) -> None:
    context = neuron.model(LAST)["context_length"]
    cases = {
        "": "empty",
        (): "non-empty",
        ("a",) * 2049: "at most 2048",
        ((1,) * (context + 1),): "maximum context length",
        ((10**9,),): "outside the vocabulary",
    }
    for inputs, words in cases.items():
        status, body, _ = neuron.post("/v1/embeddings", {"model": LAST, "input": inputs})
        assert status == 400 and words in body["error"]["message"], (inputs[:2], body)
    status, body, _ = neuron.post("/v1/embeddings", {"model": LAST, "input": "x", "dimensions": 65})
    assert status == 400 and "1 to 64" in body["error"]["message"]
    assert neuron.model(LAST)["kv_blocks"]["free"] == neuron.model(LAST)["kv_blocks"]["total"]


def test_rerank_puts_the_judged_document_first(neuron) -> None:
    body = {"model": RERANKER, "query": QUERY, "documents": list(DOCUMENTS)}
    status, answer, _ = neuron.post("/v1/rerank", body)
    assert status == 200, answer
    results = answer["results"]
    assert results[0]["index"] == BEST and len(results) == len(DOCUMENTS)
    assert results[0]["relevance_score"] > 0.99 and results[1]["relevance_score"] < 0.01
    assert results[0]["document"] == {"text": DOCUMENTS[BEST]}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    status, top, _ = neuron.post("/v1/rerank", {**body, "top_n": 2})
    assert status == 200 and [r["index"] for r in top["results"]] == [
        r["index"] for r in results[:2]
    ]
    status, refused, _ = neuron.post("/v1/rerank", {**body, "model": LAST})
    assert status == 400 and "cannot rerank" in refused["error"]["message"]


def test_cross_encoder_scores_match_transformers(neuron, folders) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    body = {"model": CROSS, "query": QUERY, "documents": list(DOCUMENTS)}
    status, answer, _ = neuron.post("/v1/rerank", body)
    assert status == 200, answer
    ours = {r["index"]: r["relevance_score"] for r in answer["results"]}
    tokenizer = AutoTokenizer.from_pretrained(str(folders[CROSS]))
    model = AutoModelForSequenceClassification.from_pretrained(str(folders[CROSS]))
    with torch.no_grad():
        for i, doc in enumerate(DOCUMENTS):
            ids = torch.tensor([tokenizer(QUERY, doc)["input_ids"]])
            want = torch.sigmoid(model(ids).logits[0, 0]).item()
            # The CPU KV cache of an fp32 model holds fp16: hidden states within ~2e-4.
            assert abs(ours[i] - want) < 2e-3, (i, ours[i], want)
    assert len(set(ours.values())) == len(DOCUMENTS)
    assert neuron.model(CROSS)["capabilities"] == ["embeddings", "rerank"]
    chat = {"model": CROSS, "messages": [{"role": "user", "content": "hi"}]}
    status, refused, _ = neuron.post("/v1/chat/completions", chat)
    assert status == 400 and "cannot generate" in refused["error"]["message"]


def _fim_by_hand(folder: Path, prefix: str, suffix: str) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pre, suf, mid = (tokenizer.token_to_id(t) for t in QWEN_FIM)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
    return [pre, *encode(prefix), suf, *encode(suffix), mid]


def test_fim_suffix_and_infill(neuron, folders) -> None:
    prefix, suffix = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
    want = _fim_by_hand(folders[CODER], prefix, suffix)
    common = {"model": CODER, "temperature": 0, "max_tokens": 8}
    status, reply, _ = neuron.post(
        "/v1/completions", {**common, "prompt": prefix, "suffix": suffix}
    )
    assert status == 200, reply
    assert reply["usage"]["prompt_tokens"] == len(want)
    # The same prompt written out by a client: its special tokens are read as tokens.
    raw = f"{QWEN_FIM[0]}{prefix}{QWEN_FIM[1]}{suffix}{QWEN_FIM[2]}"
    status, written, _ = neuron.post("/v1/completions", {**common, "prompt": raw})
    assert written["usage"]["prompt_tokens"] == len(want)
    assert written["choices"][0]["text"] == reply["choices"][0]["text"]
    body = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 8, "temperature": 0}
    status, infill, _ = neuron.post("/infill", body)  # the neuron's one FIM model
    assert status == 200, infill
    assert infill["content"] == reply["choices"][0]["text"]
    assert infill["tokens_evaluated"] == len(want) and infill["stop"] is True
    assert infill["tokens_predicted"] == reply["usage"]["completion_tokens"]


def test_fim_refused_without_fim_tokens(shared_neuron) -> None:
    body = {"model": DEMO_MODEL_ID, "prompt": "def f():", "suffix": "\n", "max_tokens": 4}
    status, reply, _ = shared_neuron.post("/v1/completions", body)
    assert status == 400 and "no FIM tokens" in reply["error"]["message"]
    assert reply["error"]["param"] == "suffix"
    status, reply, _ = shared_neuron.post("/infill", {"model": DEMO_MODEL_ID, "input_prefix": "x"})
    assert status == 400 and "cannot fill in the middle" in reply["error"]["message"]
    demo = shared_neuron.model(DEMO_MODEL_ID)
    assert demo["capabilities"] == ["chat", "embeddings"]
    assert demo["pooling"] == {"mode": "last", "normalize": True, "source": "default"}


def test_capabilities_in_models(neuron) -> None:
    caps = {m["id"]: m["capabilities"] for m in neuron.get_json("/models")["loaded"]}
    assert "fim" in caps[CODER] and "fim" not in caps[LAST]
    assert "rerank" in caps[RERANKER] and "rerank" not in caps[LAST]
    assert all("embeddings" in c for c in caps.values())
