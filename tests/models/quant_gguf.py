"""Tiny random llama-family GGUF files whose matmuls are stored quantised (gguf's writer).

gguf-py quantises Q4_0 and Q8_0 itself but not the K types, so Q4_K and Q6_K tensors are
random blocks with small fp16 super-scales: random weights either way, which is all a
tiny test model's are, in exactly the bytes llama.cpp would read.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

Q = gguf.GGMLQuantizationType
# Every row length a K type covers must be a multiple of 256.
HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, VOCAB, LAYERS = 256, 256, 4, 2, 32, 256, 2
MIXED = {
    "attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_0,
    "ffn_gate": Q.Q4_K, "ffn_up": Q.Q8_0, "ffn_down": Q.Q6_K,
    "token_embd": Q.Q8_0, "output": Q.Q4_0,
}  # fmt: skip
GGUF_QUANTISES = (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0)
# Where the fp16 super-scales sit in a block (byte offset, value): the rest is random.
_FP16_SCALES = {Q.Q4_K: [(0, 1e-4), (2, 8e-4)], Q.Q6_K: [(208, 2.5e-5)]}


def quantised(kind: Q, rows: int, cols: int, gen: np.random.Generator) -> np.ndarray:
    """[rows, cols] weights of spread ~0.05 as `kind` blocks (float32 for F32); types gguf
    cannot quantise are random blocks."""
    weights = (0.05 * gen.standard_normal((rows, cols))).astype(np.float32)
    if kind == Q.F32:
        return weights
    if kind in GGUF_QUANTISES:
        return gguf.quants.quantize(weights, kind)
    block, size = gguf.GGML_QUANT_SIZES[kind]
    raw = gen.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
    for at, value in _FP16_SCALES.get(kind, []):
        raw[:, at : at + 2] = np.full((len(raw), 1), value, np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def write_quant_gguf(
    path: Path, arch: str = "llama", types: dict[str, Q] | None = None, seed: int = 0
) -> Path:
    """A tiny `arch` ("llama" or "qwen3") GGUF; `types` by tensor kind (default MIXED)."""
    types = MIXED if types is None else types
    gen = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(512)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTER)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(VOCAB)

    def add(name: str, kind: str, rows: int, cols: int) -> None:
        qtype = types.get(kind, Q.F32)
        raw = quantised(qtype, rows, cols, gen)
        writer.add_tensor(name, raw, raw_dtype=None if qtype == Q.F32 else qtype)

    def norm(name: str, size: int) -> None:
        writer.add_tensor(name, (1.0 + 0.1 * gen.standard_normal(size)).astype(np.float32))

    add("token_embd.weight", "token_embd", VOCAB, HIDDEN)
    for i in range(LAYERS):
        norm(f"blk.{i}.attn_norm.weight", HIDDEN)
        add(f"blk.{i}.attn_q.weight", "attn_q", HEADS * HEAD_DIM, HIDDEN)
        add(f"blk.{i}.attn_k.weight", "attn_k", KV_HEADS * HEAD_DIM, HIDDEN)
        add(f"blk.{i}.attn_v.weight", "attn_v", KV_HEADS * HEAD_DIM, HIDDEN)
        add(f"blk.{i}.attn_output.weight", "attn_output", HIDDEN, HEADS * HEAD_DIM)
        if arch == "qwen3":
            norm(f"blk.{i}.attn_q_norm.weight", HEAD_DIM)
            norm(f"blk.{i}.attn_k_norm.weight", HEAD_DIM)
        norm(f"blk.{i}.ffn_norm.weight", HIDDEN)
        add(f"blk.{i}.ffn_gate.weight", "ffn_gate", INTER, HIDDEN)
        add(f"blk.{i}.ffn_up.weight", "ffn_up", INTER, HIDDEN)
        add(f"blk.{i}.ffn_down.weight", "ffn_down", HIDDEN, INTER)
    norm("output_norm.weight", HIDDEN)
    add("output.weight", "output", VOCAB, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
