"""GGUF weights (llama, qwen2, qwen3, llama3 rope factors; F32/F16/BF16/Q8_0) load into the decoder exactly:
logits equal transformers holding the same (rounded) weights, within 1e-4."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from neuron.models import gguf_io
from neuron.models.config import ModelConfig
from neuron.models.llama import LlamaForCausalLM
from tests.models.gguf_export import export_gguf
from tests.models.paged import PagedRunner
from tests.models.reference import VARIANTS, reference_logits


@pytest.mark.parametrize("variant", ["llama", "qwen2", "qwen3", "llama3-rope"])
def test_gguf_weights_match_transformers(variant, tiny_model_factory, tmp_path):
    arch, overrides = VARIANTS[variant]
    folder = tiny_model_factory(arch, **overrides)
    stored = export_gguf(folder, tmp_path / "tiny.gguf")
    reader = gguf_io.open_gguf(tmp_path / "tiny.gguf")
    config = ModelConfig.from_gguf_metadata(
        gguf_io.gguf_metadata(reader), [t.name for t in reader.tensors]
    )
    assert (config.architecture, config.qk_norm, config.attention_bias) == (
        arch,
        arch == "qwen3",
        arch == "qwen2",
    )
    ours = LlamaForCausalLM(config, torch.float32, "cpu")
    ours.load_weights(
        gguf_io.iter_gguf(reader, arch, config.num_attention_heads, config.num_key_value_heads)
    )
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    reference.load_state_dict(stored, strict=True)
    ids = list(range(500, 540))
    logits = PagedRunner(ours, kv_dtype=torch.float32).prefill({"a": ids})  # the weights alone
    assert (logits - reference_logits(reference, ids)).abs().max().item() < 1e-4
