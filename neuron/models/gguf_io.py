"""Read a GGUF file's weights as transformers-named, dequantised torch tensors.

Quantised blocks are expanded to float with `gguf.quants` at load; the decoder
then runs in the requested dtype. llama.cpp's converter reorders the rows of
the Q and K projections of llama-family models (for its interleaved rope);
that reordering is undone here so the weights match the checkpoint they came
from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as Q

from neuron.models.errors import ModelLoadError
from neuron.models.gguf_codes import (
    PACKABLE,
    GroupCodes,
    group_codes,
    packed_nbytes,
    packed_weight,
)
from neuron.models.weight_format import SourceWeights

SUPPORTED_TYPES = frozenset(
    {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K}
)
# Architectures whose Q/K rows llama.cpp permutes on conversion.
_PERMUTED_ARCHS = ("llama", "mistral", "mixtral")

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "rope_freqs.weight": "rope_freqs.weight",
}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    # A routed layer: the router, and every expert stacked in one tensor [E, out, in].
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_exps": "mlp.experts.gate_proj",
    "ffn_up_exps": "mlp.experts.up_proj",
    "ffn_down_exps": "mlp.experts.down_proj",
}
_LAYER_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")
# Large arrays (the vocabulary) are left to the tokenizer, which reads them itself.
_SKIPPED_KEYS = (
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores",
)


def open_gguf(path: Path) -> gguf.GGUFReader:
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError) as exc:
        raise ModelLoadError("invalid", f"{path.name} is not a readable GGUF file: {exc}") from exc


def gguf_metadata(reader: gguf.GGUFReader) -> dict[str, Any]:
    """Scalar and small-array key/values; `<arch>.vocab_size` filled in from the vocabulary."""
    meta = {
        key: field.contents() for key, field in reader.fields.items() if key not in _SKIPPED_KEYS
    }
    arch = meta.get("general.architecture")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if arch and f"{arch}.vocab_size" not in meta and tokens is not None:
        meta[f"{arch}.vocab_size"] = len(tokens.data)
    return meta


def hf_name(name: str) -> str:
    """Map a GGUF tensor name to the transformers name the decoder loads by."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    match = _LAYER_RE.fullmatch(name)
    if match is None or match.group(2) not in _LAYER_NAMES:
        raise ModelLoadError("unsupported", f"unknown GGUF tensor {name!r}")
    layer, part, kind = match.groups()
    return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{kind}"


def unpermute_qk(weight: Any, n_head: int) -> Any:
    """Inverse of llama.cpp's `permute`: rows (head, i, half) back to (head, half, i)
    (a numpy array or a torch tensor)."""
    rows = weight.shape[0]
    w = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
    return w.swapaxes(1, 2).reshape(weight.shape)


def check_tensor_types(reader: gguf.GGUFReader) -> None:
    """Refuse a file with a tensor type we cannot dequantise, before any work is done."""
    for tensor in reader.tensors:
        if tensor.tensor_type not in SUPPORTED_TYPES:
            raise ModelLoadError(
                "unsupported",
                f"tensor {tensor.name!r} has GGUF type {tensor.tensor_type.name}, which is not "
                f"supported (supported: {', '.join(sorted(t.name for t in SUPPORTED_TYPES))})",
            )


def packed_sizes(reader: gguf.GGUFReader) -> dict[str, int]:
    """Transformers name → bytes in the GPU's packed form, for every tensor that has one."""
    return {
        hf_name(t.name): packed_nbytes(t.tensor_type, *(int(d) for d in reversed(t.shape)))
        for t in reader.tensors
        if t.tensor_type in PACKABLE
    }


def dequantize(tensor: Any) -> np.ndarray:
    """One reader tensor as float32 in transformers' [out, in] layout."""
    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    shape = tuple(int(d) for d in reversed(tensor.shape))
    data = np.asarray(data, dtype=np.float32).reshape(shape)
    # Unquantised tensors come back as read-only views of the memory-mapped file.
    return data if data.flags.writeable else data.copy()


def iter_gguf(
    reader: gguf.GGUFReader,
    arch: str,
    n_head: int,
    n_kv_head: int,
    source: SourceWeights | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (transformers name, float32 tensor) for every tensor in the file; `source`,
    when given, also gets each tensor's storage type and its 4-bit codes if it has any.
    The tensors `source.keep` names go to `source.packed` in the GPU's packed form
    instead, and only their shape is yielded (a meta tensor)."""
    check_tensor_types(reader)
    permuted = arch in _PERMUTED_ARCHS
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        heads = None
        if permuted and ".self_attn.q_proj." in name:
            heads = n_head
        elif permuted and ".self_attn.k_proj." in name:
            heads = n_kv_head
        if source is not None and name in source.keep:
            packed = packed_weight(tensor)
            if packed is None:
                raise ModelLoadError("invalid", f"tensor {tensor.name!r} cannot be packed")
            if heads is not None:
                packed = packed.map_rows(lambda t, h=heads: unpermute_qk(t, h))
            source.packed[name] = packed
            shape = tuple(int(d) for d in reversed(tensor.shape))
            yield name, torch.empty(shape, device="meta")
            continue
        data = dequantize(tensor)
        codes = group_codes(tensor) if source is not None else None
        if heads is not None:
            data = unpermute_qk(data, heads)
            if codes is not None:
                codes = GroupCodes(*(unpermute_qk(t, heads) for t in vars(codes).values()))
        if source is not None:
            source.types[name] = tensor.tensor_type
            if codes is not None:
                source.codes[name] = codes
        yield name, torch.from_numpy(data)
