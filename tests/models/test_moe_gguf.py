"""Mixture-of-experts models as GGUF files (llama.cpp's stacked `ffn_*_exps` experts,
stored F16, Q8_0 or Q4_0): they load and give the logits of transformers holding the same
rounded weights (within 1e-4), and on CPU 4-bit experts stay packed and agree with their
dequantised form."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from neuron.models import gguf_io
from neuron.models.config import ModelConfig
from neuron.models.llama import LlamaForCausalLM
from neuron.models.moe import ExpertLinears, MoEBlock
from neuron.models.quant_linear import Int4Linear, Int4X86Linear, Int8Linear
from neuron.models.weight_format import SourceWeights, pack
from tests.models.gguf_export import Q, export_gguf
from tests.models.paged import PagedRunner
from tests.models.reference import VARIANTS, load_checkpoint_tensors, reference_logits

IDS = list(range(500, 540))


def gguf_model(path: Path, source: SourceWeights | None = None) -> LlamaForCausalLM:
    reader = gguf_io.open_gguf(path)
    config = ModelConfig.from_gguf_metadata(
        gguf_io.gguf_metadata(reader), [t.name for t in reader.tensors]
    )
    model = LlamaForCausalLM(config, torch.float32, "cpu")
    heads = (config.num_attention_heads, config.num_key_value_heads)
    model.load_weights(gguf_io.iter_gguf(reader, config.architecture, *heads, source))
    return model


def logits(model: LlamaForCausalLM) -> torch.Tensor:
    return PagedRunner(model, kv_dtype=torch.float32).prefill({"a": IDS})


@pytest.mark.parametrize(
    ("variant", "experts"),
    [("qwen3-moe", Q.F16), ("qwen3-moe-unnormalised", Q.Q8_0), ("mixtral", Q.Q4_0)],
)
def test_moe_gguf_matches_transformers(variant, experts, tiny_model_factory, tmp_path):
    arch, overrides = VARIANTS[variant]
    folder = tiny_model_factory(arch, **overrides)
    stored = export_gguf(folder, tmp_path / "tiny.gguf", experts)
    ours = gguf_model(tmp_path / "tiny.gguf")
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    c, r = ours.config, reference.config
    assert c.architecture == arch
    assert c.num_experts == (getattr(r, "num_experts", None) or r.num_local_experts)
    assert c.num_experts_per_tok == r.num_experts_per_tok
    assert c.norm_topk_prob == getattr(r, "norm_topk_prob", True)
    dense = set(getattr(r, "mlp_only_layers", ()))
    assert c.moe_layers == tuple(i for i in range(r.num_hidden_layers) if i not in dense)
    load_checkpoint_tensors(reference, stored)
    assert (logits(ours) - reference_logits(reference, IDS)).abs().max().item() < 1e-4


@pytest.mark.parametrize("experts", [Q.Q4_0, Q.Q8_0])
def test_quantized_experts_stay_packed(experts, tiny_model_factory, tmp_path):
    """`auto` keeps the file's experts packed (4-bit codes as they are, Q8_0 as int8 per
    channel), expert by expert, and the model stays close to the dequantised one."""
    folder = tiny_model_factory("qwen3_moe")
    export_gguf(folder, tmp_path / "tiny.gguf", experts)
    dense = gguf_model(tmp_path / "tiny.gguf")
    source = SourceWeights()
    packed = gguf_model(tmp_path / "tiny.gguf", source)
    name = pack(packed, "auto", source)
    kind = "int4" if experts == Q.Q4_0 else "int8"
    assert name == f"{kind} layers, int8 vocabulary"
    linears = (Int4Linear, Int4X86Linear) if kind == "int4" else (Int8Linear,)
    blocks = [layer.mlp for layer in packed.layers if isinstance(layer.mlp, MoEBlock)]
    assert len(blocks) == 2
    for block in blocks:
        for weights in (block.gate_up_weight, block.down_weight):
            assert isinstance(weights, ExpertLinears) and len(weights) == 8
            assert all(isinstance(linear, linears) for linear in weights.experts)
    # The experts' bytes near the file's (4 bits or 8 a weight, and their scales), not fp32's.
    weights = sum(
        layer.mlp.gate_up_weight.numel() + layer.mlp.down_weight.numel()
        for layer in dense.layers
        if isinstance(layer.mlp, MoEBlock)
    )
    held = sum(
        t.numel() * t.element_size()
        for block in blocks
        for t in (*block.gate_up_weight.buffers(), *block.down_weight.buffers())
    )
    print(f"{kind} experts: {held / weights:.2f} bytes a weight")
    assert held < weights * (0.7 if kind == "int4" else 1.2)
    got, want = logits(packed), logits(dense)
    worst = (got - want).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1).min().item()
    print(f"{kind} experts vs dequantised: max |Δlogit| {worst:.2e}, min cosine {cosine:.5f}")
    # int4: the file's own codes with fp32 activations, exact but for the int8 vocabulary;
    # int8: Q8_0's blocks re-rounded per output channel, with bf16 activations.
    if kind == "int4":
        assert worst < 1e-2
    assert cosine > 0.999
    assert (got.argmax(-1) == want.argmax(-1)).float().mean().item() >= 0.95
