"""Write a tiny Hugging Face folder as a GGUF file the way llama.cpp's converter does.

Names come from gguf's own tensor-name map, Q/K rows of llama get llama.cpp's
permutation, and some tensors are stored quantised; the matching transformers
model gets the same rounding so that both sides hold identical weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

Q = gguf.GGMLQuantizationType
# Which tensors are stored in which GGUF type (the rest stay F32).
STORAGE = {"mlp.down_proj": Q.F16, "mlp.up_proj": Q.BF16, "mlp.gate_proj": Q.Q8_0}


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, verbatim in numpy."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def llama3_rope_factors(config: dict) -> np.ndarray:
    """The `rope_freqs.weight` llama.cpp's converter writes for llama3 rope scaling."""
    rope = config["rope_parameters"]
    dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, old_len = rope["factor"], rope["original_max_position_embeddings"]
    low, high = rope["low_freq_factor"], rope["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_len / high:
            factors.append(1.0)
        elif wavelen > old_len / low:
            factors.append(factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def storage_type(name: str) -> Q:
    return next((q for part, q in STORAGE.items() if f".{part}." in name), Q.F32)


def export_gguf(folder: Path, out: Path) -> dict[str, torch.Tensor]:
    """Write folder's model to `out`; return the weights as the GGUF stores them (rounded)."""
    config = json.loads((folder / "config.json").read_text())
    arch = config["model_type"]
    model_arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}.get(
        arch, gguf.MODEL_ARCH.QWEN3
    )
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_block_count(layers)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_vocab_size(config["vocab_size"])
    names = gguf.get_tensor_name_map(model_arch, layers)
    stored: dict[str, torch.Tensor] = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        qtype = storage_type(name)
        data = gguf.quants.quantize(tensor.numpy(), qtype)
        stored[name] = torch.from_numpy(gguf.quants.dequantize(data, qtype).copy())
        raw = gguf.quants.dequantize(data, qtype) if qtype == Q.F32 else data
        if arch == "llama" and ".q_proj." in name:
            raw = llama_cpp_permute(raw, heads)
        elif arch == "llama" and ".k_proj." in name:
            raw = llama_cpp_permute(raw, kv_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        writer.add_tensor(gguf_name, raw, raw_dtype=None if qtype == Q.F32 else qtype)
    if config["rope_parameters"].get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(config))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored
