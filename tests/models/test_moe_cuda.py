"""A mixture-of-experts model on a GPU: the routed experts through the Triton fused
kernel give transformers' logits (fp32 weights, exact dot products: within 1e-3)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from neuron.models.loader import load_model
from tests.models.paged import PagedRunner
from tests.models.reference import reference_logits

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]


@pytest.mark.parametrize("arch", ["qwen3_moe", "mixtral"])
def test_moe_on_cuda_matches_transformers(arch, tiny_model_factory):
    folder = tiny_model_factory(arch)
    ours = load_model(str(folder), "cuda", torch.float32).model
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    runner = PagedRunner(ours, kv_dtype=torch.float32)
    prompts = {"a": list(range(300, 337)), "b": list(range(40, 45))}
    logits = runner.prefill(prompts).cpu()
    start = 0
    for ids in prompts.values():
        want = reference_logits(reference, ids)
        assert (logits[start : start + len(ids)] - want).abs().max().item() < 1e-3
        start += len(ids)
