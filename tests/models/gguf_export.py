"""Write a tiny Hugging Face folder as a GGUF file the way llama.cpp's converter does.

Names come from gguf's own tensor-name map, Q/K rows of llama get llama.cpp's
permutation, and some tensors are stored quantised; the matching transformers
model gets the same rounding so that both sides hold identical weights.
"""

from __future__ import annotations

import json
import math
import re
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


# One expert's tensor, in Qwen3-MoE's naming and Mixtral's, and its GGUF stacked name.
EXPERT = re.compile(
    r"model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\.(\d+)\."
    r"(gate_proj|up_proj|down_proj|w1|w3|w2)\.weight"
)
_EXPERT_GGUF = {"gate_proj": "gate", "w1": "gate", "up_proj": "up", "w3": "up"}
# transformers' model type → (GGUF architecture, gguf's enum for the tensor names).
_ARCHS = {
    "llama": ("llama", gguf.MODEL_ARCH.LLAMA),
    "qwen2": ("qwen2", gguf.MODEL_ARCH.QWEN2),
    "qwen3": ("qwen3", gguf.MODEL_ARCH.QWEN3),
    "qwen3_moe": ("qwen3moe", gguf.MODEL_ARCH.QWEN3MOE),
    "mixtral": ("llama", gguf.MODEL_ARCH.LLAMA),  # llama.cpp's converter writes it so
}


def storage_type(name: str) -> Q:
    return next((q for part, q in STORAGE.items() if f".{part}." in name), Q.F32)


def _write_experts(
    writer: gguf.GGUFWriter, tensors: dict[str, torch.Tensor], qtype: Q
) -> dict[str, torch.Tensor]:
    """Stack each layer's experts into `blk.N.ffn_{gate,up,down}_exps` as llama.cpp does,
    stored as `qtype`; pop them from `tensors`, return them per expert as stored."""
    stacks: dict[tuple[int, str], dict[int, str]] = {}
    for name in list(tensors):
        match = EXPERT.fullmatch(name)
        if match:
            layer, expert, part = match.groups()
            stacks.setdefault((int(layer), _EXPERT_GGUF.get(part, "down")), {})[int(expert)] = name
    stored = {}
    for (layer, part), names in sorted(stacks.items()):
        order = [names[e] for e in sorted(names)]
        stacked = torch.stack([tensors.pop(n) for n in order]).numpy()
        data = gguf.quants.quantize(stacked, qtype)
        rounded = torch.from_numpy(gguf.quants.dequantize(data, qtype).copy())
        stored.update(zip(order, rounded.unbind(0), strict=True))
        writer.add_tensor(f"blk.{layer}.ffn_{part}_exps.weight", data, raw_dtype=qtype)
    return stored


def export_gguf(folder: Path, out: Path, experts: Q = Q.F16) -> dict[str, torch.Tensor]:
    """Write folder's model to `out` (a MoE's experts stored as `experts`); return the
    weights as the GGUF stores them (rounded)."""
    config = json.loads((folder / "config.json").read_text())
    arch = config["model_type"]
    gguf_arch, model_arch = _ARCHS[arch]
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(out), gguf_arch)
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
    tensors = load_file(str(folder / "model.safetensors"))
    stored: dict[str, torch.Tensor] = {}
    if arch in ("qwen3_moe", "mixtral"):
        writer.add_expert_count(config.get("num_experts") or config["num_local_experts"])
        writer.add_expert_used_count(config["num_experts_per_tok"])
        if arch == "qwen3_moe":
            writer.add_expert_feed_forward_length(config["moe_intermediate_size"])
            writer.add_expert_weights_norm(config["norm_topk_prob"])
        stored = _write_experts(writer, tensors, experts)
    names = gguf.get_tensor_name_map(model_arch, layers)
    # gguf's map for qwen3moe has no dense MLP (llama.cpp's has none): qwen3's names it.
    dense_names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, layers)
    for name, tensor in tensors.items():
        qtype = storage_type(name)
        data = gguf.quants.quantize(tensor.numpy(), qtype)
        stored[name] = torch.from_numpy(gguf.quants.dequantize(data, qtype).copy())
        raw = gguf.quants.dequantize(data, qtype) if qtype == Q.F32 else data
        if gguf_arch == "llama" and ".q_proj." in name:
            raw = llama_cpp_permute(raw, heads)
        elif gguf_arch == "llama" and ".k_proj." in name:
            raw = llama_cpp_permute(raw, kv_heads)
        suffixes = (".weight", ".bias")
        gguf_name = names.get_name(name, suffixes) or dense_names.get_name(name, suffixes)
        writer.add_tensor(gguf_name, raw, raw_dtype=None if qtype == Q.F32 else qtype)
    if config["rope_parameters"].get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(config))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored
