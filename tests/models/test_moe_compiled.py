"""A mixture-of-experts model's compiled CPU decode step (neuron/engine/cpu_compile.py):
its graphs take the experts' operator as is, and decode what transformers does.

Qwen3-MoE with a dense layer among routed ones: a batch of three prompts of unequal
lengths decoded together for 32 greedy steps, every decode pass through the batch graph,
gives transformers' tokens; the graph's first-step logits are within 1e-4 of the eager
pass's (fp32 cache both)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from neuron.engine.cpu_compile import CompiledDecoder
from neuron.models.attention import AttentionMetadata
from neuron.models.loader import load_model
from tests.models.paged import PagedRunner, greedy
from tests.models.reference import reference_greedy


class CompiledRunner(PagedRunner):
    """Decode passes through the compiled graphs, prefill eagerly (as the engine does)."""

    def __init__(self, model) -> None:
        super().__init__(model, kv_dtype=torch.float32)
        self.compiled = CompiledDecoder(model, self.kv)
        self.compiled.start()
        assert self.compiled.settled.wait(timeout=1800)
        assert self.compiled.batched.is_set(), self.compiled.failed

    def _run(self, ids: list[int], positions: list[int], meta: AttentionMetadata) -> torch.Tensor:
        if meta.is_prefill:
            return super()._run(ids, positions, meta)
        hidden = self.compiled.forward(torch.tensor(ids), torch.tensor(positions), meta)
        assert hidden is not None, "the decode pass did not go through a graph"
        return self.model.compute_logits(hidden)


def test_compiled_moe_decode_matches_transformers(tiny_model_factory):
    folder = tiny_model_factory("qwen3_moe")
    model = load_model(str(folder), "cpu", torch.float32).model
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(11)
    prompts = [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in (29, 13, 4)]

    runner = CompiledRunner(model)
    eager = PagedRunner(model, kv_dtype=torch.float32)
    chunks = {f"first{i}": p for i, p in enumerate(prompts)}
    ends = torch.tensor([len(p) for p in prompts]).cumsum(0) - 1
    first = eager.prefill(chunks)[ends].argmax(-1).tolist()
    runner.prefill(chunks)
    step = dict(zip(chunks, first, strict=True))
    compiled_logits, eager_logits = runner.decode(step), eager.decode(step)
    worst = (compiled_logits - eager_logits).abs().max().item()
    print(f"compiled vs eager MoE decode logits: max |Δ| {worst:.2e}")
    assert worst < 1e-4

    generated = greedy(model, prompts, 32, runner=runner)
    for prompt, tokens in zip(prompts, generated, strict=True):
        assert tokens == reference_greedy(reference, prompt, 32)
    assert runner.compiled.steps == 1 + 31
