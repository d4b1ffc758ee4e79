"""The real SmolLM2-135M GGUF (Q4_1): same tokens as transformers reading the same file.

Both models are loaded once for the module; both get the same input ids (the
prompt rendered with the chat template and tokenizer read from the GGUF).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from neuron.models.loader import LoadedModel, load_model
from neuron.text.chat_template import ChatTemplate
from tests.models.paged import PagedRunner, greedy
from tests.models.reference import reference_greedy, reference_logits


@pytest.fixture(scope="module")
def ours(demo_gguf) -> LoadedModel:
    return load_model(str(demo_gguf), "cpu", torch.float32)


@pytest.fixture(scope="module")
def reference(demo_gguf):
    return AutoModelForCausalLM.from_pretrained(
        str(demo_gguf.parent), gguf_file=demo_gguf.name, dtype=torch.float32
    ).eval()


def chat_ids(loaded: LoadedModel, question: str) -> list[int]:
    tok = loaded.tokenizer
    template = ChatTemplate(loaded.chat_template, tok.bos_token, tok.eos_token)
    return tok.encode(template.render([{"role": "user", "content": question}]))


@pytest.fixture(scope="module")
def prompt(ours) -> list[int]:
    ids = chat_ids(ours, "What is the capital of France?")
    assert len(ids) > 16  # spans more than one KV block
    return ids


@pytest.fixture(scope="module")
def generated(ours, prompt) -> list[int]:
    """20 greedy tokens from our decoder, shared by the tests below."""
    return greedy(ours.model, [prompt], 20)[0]


def test_config_and_size_from_gguf(ours):
    c = ours.config
    assert (c.architecture, c.num_hidden_layers, c.hidden_size) == ("llama", 30, 576)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (9, 3, 64)
    assert c.tie_word_embeddings
    assert ours.format == "gguf"
    # 134.5M parameters in fp32, the tied embedding counted once.
    assert ours.nbytes == 4 * sum(p.numel() for p in ours.model.parameters())
    assert 130e6 < ours.nbytes / 4 < 140e6


def test_prompt_logits_match_transformers(ours, reference, prompt):
    # The file's weights as read, over an fp32 cache (the fp16 one serving uses is held to
    # its own bounds in test_decoder_vs_transformers.py).
    logits = PagedRunner(ours.model, kv_dtype=torch.float32).prefill({"prompt": prompt})
    assert (logits - reference_logits(reference, prompt)).abs().max().item() < 1e-3


def test_greedy_chat_matches_transformers(reference, prompt, generated):
    assert generated == reference_greedy(reference, prompt, 20)


def test_answers_capital_of_france(ours, generated):
    ends = [i for i, t in enumerate(generated) if t in ours.eos_token_ids]
    text = ours.tokenizer.decode(generated[: ends[0]] if ends else generated)
    assert "Paris" in text
