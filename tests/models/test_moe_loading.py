"""Loading mixture-of-experts checkpoints: every expert layout gives the same model, and
an MoE architecture the decoder does not implement is refused by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from neuron.models.errors import ModelLoadError
from neuron.models.loader import load_model
from neuron.registry import _LOAD_STATUS
from tests.models.paged import PagedRunner

IDS = list(range(100, 130))


def _logits(folder) -> torch.Tensor:
    model = load_model(str(folder), "cpu", torch.float32).model
    return PagedRunner(model, kv_dtype=torch.float32).prefill({"a": IDS})


@pytest.mark.parametrize("arch", ["qwen3_moe", "mixtral"])
def test_stacked_experts_load_as_per_expert_ones(arch, tiny_model_factory, tmp_path):
    """transformers 5 holds the experts stacked (`mlp.experts.gate_up_proj` [E, 2I, H],
    `mlp.experts.down_proj` [E, H, I]) and may be saved so; the Hub's checkpoints have one
    tensor per expert (`mlp.experts.N.gate_proj`, Mixtral's `block_sparse_moe.experts.N.w1`)."""
    folder = tiny_model_factory(arch)
    stacked = tmp_path / "stacked"
    shutil.copytree(folder, stacked)
    (stacked / "model.safetensors").unlink()
    reference = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    assert any(k.endswith(".mlp.experts.gate_up_proj") for k in state)
    save_file(state, str(stacked / "model.safetensors"))
    assert torch.equal(_logits(stacked), _logits(folder))


@pytest.mark.parametrize("model_type", ["qwen2_moe", "deepseek_v3", "gpt_oss"])
def test_unimplemented_moe_is_refused_by_name(model_type, tiny_model_factory, tmp_path):
    folder = tmp_path / model_type
    shutil.copytree(tiny_model_factory("qwen3_moe"), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type=model_type, architectures=["SomeMoeForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(folder), "cpu")
    assert caught.value.kind == "unsupported"
    assert _LOAD_STATUS[caught.value.kind] == 400
    assert repr(model_type) in caught.value.message


def test_memory_estimate_counts_every_expert(tiny_model_factory):
    """All experts are resident, though each token runs through two of the eight."""
    loaded = load_model(str(tiny_model_factory("qwen3_moe")), "cpu", torch.float32)
    c = loaded.config
    experts = sum(
        p.numel() for n, p in loaded.model.named_parameters() if "gate_up" in n or "down" in n
    )
    routed = len(c.moe_layers) * c.num_experts * 3 * c.hidden_size * c.moe_intermediate_size
    dense = (c.num_hidden_layers - len(c.moe_layers)) * 3 * c.hidden_size * c.intermediate_size
    assert experts == routed + dense
    assert loaded.nbytes >= 4 * experts


def test_which_layers_are_routed():
    """Qwen3-MoE routes every `decoder_sparse_step`-th layer but `mlp_only_layers`; the
    Hub's configs name the expert count `num_experts`, transformers 5 `num_local_experts`."""
    from neuron.models.config import ModelConfig

    base = {"model_type": "qwen3_moe", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "moe_intermediate_size": 4, "num_hidden_layers": 8,
            "num_attention_heads": 2, "num_experts_per_tok": 2}  # fmt: skip
    config = ModelConfig.from_hf_dict(
        {**base, "num_experts": 4, "decoder_sparse_step": 2, "mlp_only_layers": [5]}
    )
    assert config.moe_layers == (1, 3, 7)
    assert (config.num_experts, config.norm_topk_prob, config.qk_norm) == (4, False, True)
    assert ModelConfig.from_hf_dict({**base, "num_local_experts": 6}).num_experts == 6
    mixtral = ModelConfig.from_hf_dict({**base, "model_type": "mixtral", "num_local_experts": 8})
    assert mixtral.moe_layers == tuple(range(8)) and mixtral.norm_topk_prob
    assert mixtral.moe_intermediate_size == 16  # Mixtral's experts are `intermediate_size` wide


def test_an_unloaded_moe_is_freed(tiny_model_factory):
    """The experts' operator finds its blocks by key, without keeping them alive."""
    import gc
    import weakref

    model = load_model(str(tiny_model_factory("mixtral")), "cpu", torch.float32).model
    PagedRunner(model).prefill({"a": IDS})
    gone = weakref.ref(model.layers[0].mlp)
    del model
    gc.collect()
    assert gone() is None
