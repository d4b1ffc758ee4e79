"""ModelConfig from config.json dicts (transformers 4 and 5 layouts) and GGUF metadata."""

from __future__ import annotations

import pytest

from neuron.models.config import ModelConfig
from neuron.models.errors import ModelLoadError

# Llama 3.1 8B's config.json as transformers 4 wrote it.
LLAMA31 = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
}


def test_llama31_transformers4_layout():
    c = ModelConfig.from_hf_dict(LLAMA31)
    assert (c.architecture, c.head_dim, c.num_key_value_heads) == ("llama", 128, 8)
    assert c.rope_theta == 500000.0
    assert c.rope_scaling is not None and c.rope_scaling["rope_type"] == "llama3"
    assert c.eos_token_ids == (128001, 128008, 128009)
    assert not (c.attention_bias or c.o_proj_bias or c.qk_norm or c.tie_word_embeddings)


def test_transformers5_rope_parameters_layout():
    d = {k: v for k, v in LLAMA31.items() if k not in ("rope_theta", "rope_scaling")}
    d["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    c = ModelConfig.from_hf_dict(d)
    assert (c.rope_theta, c.rope_scaling) == (10000.0, None)


def test_per_architecture_features():
    base = {k: v for k, v in LLAMA31.items() if k not in ("architectures", "rope_scaling")}
    qwen2 = ModelConfig.from_hf_dict({**base, "model_type": "qwen2"})
    assert qwen2.attention_bias and not qwen2.o_proj_bias
    qwen3 = ModelConfig.from_hf_dict({**base, "model_type": "qwen3", "head_dim": 64})
    assert qwen3.qk_norm and qwen3.head_dim == 64 and not qwen3.attention_bias
    # Mistral v0.1 attends within a 4096-token window: longer contexts are refused.
    mistral = ModelConfig.from_hf_dict({**base, "model_type": "mistral", "sliding_window": 4096})
    assert mistral.max_position_embeddings == 4096
    # Architecture from the class name when model_type is absent.
    by_class = ModelConfig.from_hf_dict(
        {**base, "model_type": None, "architectures": ["Qwen2ForCausalLM"]}
    )
    assert by_class.architecture == "qwen2"


def test_unknown_architecture_names_it_and_the_supported_ones():
    with pytest.raises(ModelLoadError) as err:
        ModelConfig.from_hf_dict({**LLAMA31, "model_type": "gpt_neox"})
    assert err.value.kind == "unsupported"
    assert "gpt_neox" in str(err.value)
    assert "llama, mistral, qwen2, qwen3" in str(err.value)


def test_unsupported_rope_scaling_is_refused():
    d = {**LLAMA31, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    with pytest.raises(ModelLoadError, match="yarn") as err:
        ModelConfig.from_hf_dict(d)
    assert err.value.kind == "unsupported"


def test_gguf_metadata_qwen3():
    meta = {
        "general.architecture": "qwen3",
        "qwen3.embedding_length": 1024,
        "qwen3.feed_forward_length": 3072,
        "qwen3.block_count": 28,
        "qwen3.attention.head_count": 16,
        "qwen3.attention.head_count_kv": 8,
        "qwen3.attention.key_length": 128,
        "qwen3.attention.layer_norm_rms_epsilon": 1e-6,
        "qwen3.rope.freq_base": 1000000.0,
        "qwen3.context_length": 40960,
        "qwen3.vocab_size": 151936,
        "tokenizer.ggml.eos_token_id": 151645,
    }
    names = ["token_embd.weight", "blk.0.attn_q_norm.weight", "blk.0.attn_q.weight"]
    c = ModelConfig.from_gguf_metadata(meta, names)
    assert (c.architecture, c.head_dim, c.num_key_value_heads) == ("qwen3", 128, 8)
    assert c.qk_norm and c.tie_word_embeddings and not c.attention_bias
    assert c.eos_token_ids == (151645,)
    untied = ModelConfig.from_gguf_metadata(meta, [*names, "output.weight"])
    assert not untied.tie_word_embeddings


def test_gguf_unknown_architecture():
    with pytest.raises(ModelLoadError, match="'phi3'") as err:
        ModelConfig.from_gguf_metadata({"general.architecture": "phi3"}, [])
    assert err.value.kind == "unsupported"
