"""The hand-written decoder against transformers on the same tiny random weights.

Logits are compared in fp32 with a max abs difference below 1e-4 (logits here
are of order 10), through the paged cache with blocks of 16 tokens: a batch of
prompts of unequal lengths longer than one block, decode steps, and a prefill
split in two chunks. Greedy generation must give the same tokens. The logits are
compared over an fp32 cache (the decoder's own arithmetic) and over the fp16 one an fp32
model serves from on the CPU (`kv_cache_dtype`): attention reads keys and values as the
cache holds them, and their rounding to 11 significant bits moves these logits by up to
about 2e-2. The mixture-of-experts variants (Qwen3-MoE with and without renormalised
top-k weights, Mixtral) are held to the same figures.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from neuron.models.loader import load_model
from tests.models.paged import PagedRunner, greedy
from tests.models.reference import VARIANTS, reference_greedy, reference_logits

TOLERANCE = 1e-4
# Each cache type and the largest difference from transformers it is held to.
CACHES = pytest.mark.parametrize(
    ("kv_dtype", "tolerance"), [(torch.float32, TOLERANCE), (torch.float16, 5e-2)]
)


@pytest.fixture(scope="module", params=list(VARIANTS))
def models(request, tiny_model_factory):
    arch, overrides = VARIANTS[request.param]
    folder = tiny_model_factory(arch, **overrides)
    ours = load_model(str(folder), "cpu", torch.float32).model
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return ours, reference


def random_ids(n: int, seed: int, vocab: int) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@CACHES
def test_batched_prefill_then_decode(models, kv_dtype, tolerance):
    ours, reference = models
    vocab = ours.config.vocab_size
    prompts = {
        "a": random_ids(37, 1, vocab),
        "b": random_ids(21, 2, vocab),
        "c": random_ids(5, 3, vocab),
    }
    runner = PagedRunner(ours, kv_dtype=kv_dtype)
    logits = runner.prefill(prompts)
    start = 0
    for ids in prompts.values():
        segment = logits[start : start + len(ids)]
        assert max_diff(segment, reference_logits(reference, ids)) < tolerance
        start += len(ids)
    for step in range(3):
        new = dict(zip(prompts, random_ids(3, 10 + step, vocab), strict=True))
        logits = runner.decode(new)
        for row, (name, token) in enumerate(new.items()):
            prompts[name] = [*prompts[name], token]
            expected = reference_logits(reference, prompts[name])[-1]
            assert max_diff(logits[row], expected) < tolerance


@CACHES
def test_chunked_prefill_with_cached_prefix(models, kv_dtype, tolerance):
    """Second pass: one sequence continues from 23 cached keys, another starts fresh."""
    ours, reference = models
    vocab = ours.config.vocab_size
    long, other, fresh = random_ids(40, 4, vocab), random_ids(19, 5, vocab), random_ids(9, 6, vocab)
    runner = PagedRunner(ours, kv_dtype=kv_dtype)
    runner.prefill({"long": long[:23], "other": other})
    logits = runner.prefill({"long": long[23:], "fresh": fresh})
    assert max_diff(logits[:17], reference_logits(reference, long)[23:]) < tolerance
    assert max_diff(logits[17:], reference_logits(reference, fresh)) < tolerance


def test_greedy_generation_matches_generate(models):
    ours, reference = models
    vocab = ours.config.vocab_size
    prompts = [random_ids(30, 7, vocab), random_ids(12, 8, vocab)]
    # A routed model's output jumps where a rounding flips a token's choice of expert, so
    # its tokens are held equal over the fp32 cache (the fp16 one's logits are held to
    # their tolerance above); dense models decode over the cache serving picks.
    kv_dtype = torch.float32 if ours.config.num_experts else None
    generated = greedy(ours, prompts, 32, kv_dtype)
    for prompt, tokens in zip(prompts, generated, strict=True):
        expected = reference_greedy(reference, prompt, 32)
        assert len(expected) == 32
        assert tokens == expected


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_bfloat16_logits_close_to_transformers_bfloat16(arch, tiny_model_factory):
    """bf16 rounds to 8 bits of mantissa: at logits near 8 one step is 0.0625, so the
    two implementations may differ by a few steps (0.25), not more."""
    folder = tiny_model_factory(arch)
    ours = load_model(str(folder), "cpu", "bf16").model
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16).eval()
    ids = random_ids(40, 9, ours.config.vocab_size)
    logits = PagedRunner(ours).prefill({"a": ids})
    assert ours.embed_tokens.dtype == torch.bfloat16
    assert max_diff(logits, reference_logits(reference, ids)) < 0.25
