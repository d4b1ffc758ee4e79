"""Read AWQ (GEMM) and GPTQ checkpoints' 4-bit layers into the GPU's packed form.

Both store, per linear layer, int32 words of eight 4-bit codes (`qweight`), eight 4-bit
zero points per word (`qzeros`) and fp16 `scales`, one of each per group of input
features and output feature, with w = (code - zero) * scale:
- AWQ GEMM: qweight [in, out / 8] and qzeros [in / group, out / 8] packed along the
  output features in AutoAWQ's interleaved order;
- GPTQ: qweight [in / 8, out] packed along the input features, qzeros [in / group,
  out / 8] along the outputs, in order; the v1 format stores each zero point minus one.
Each layer becomes int4 codes with its fp16 scales and an fp32 offset (-zero * scale,
exact), so the dequantised weights are the checkpoint's own numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from neuron.models.errors import ModelLoadError
from neuron.models.safetensors_io import safetensors_files
from neuron.models.weight_format import SourceWeights
from neuron_kernels import PackedWeight

METHODS = ("awq", "gptq")
_AWQ_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]  # nibble holding output column j of each word
_PARTS = ("qweight", "qzeros", "scales")


@dataclass(frozen=True)
class Scheme:
    """What `quantization_config` says, checked: only what we read gets this far."""

    method: str
    group: int  # -1 in the file: one group over all input features
    zero_minus_one: bool  # GPTQ v1 stores zero points minus one


def scheme(raw_config: dict[str, Any], model: str) -> Scheme | None:
    """The checkpoint's scheme, None for an unquantised one; a 400-kind error names the
    model and what is not read (another method, bits, layout or act-order)."""
    quant = raw_config.get("quantization_config")
    if not quant:
        return None
    method = str(quant.get("quant_method", "")).lower()
    if method not in METHODS:
        raise ModelLoadError(
            "unsupported",
            f"{model} is quantised with {method or 'an unnamed method'!r}, which is not "
            f"supported (supported: {', '.join(METHODS)}, and GGUF files)",
        )
    bits = quant.get("bits", quant.get("w_bit", 4))
    problem = None
    if bits != 4:
        problem = f"{bits}-bit weights (only 4-bit are read)"
    elif method == "awq" and str(quant.get("version", "gemm")).lower() != "gemm":
        problem = f"the {quant.get('version')!r} layout (only GEMM is read)"
    elif method == "awq" and quant.get("zero_point") is False:
        problem = "AWQ without zero points"
    elif method == "gptq" and quant.get("desc_act"):
        problem = "act-order (desc_act: true)"
    if problem is not None:
        raise ModelLoadError("unsupported", f"{model}: {method.upper()} with {problem}")
    group = int(quant.get("group_size", quant.get("q_group_size", 128)))
    zero_minus_one = method == "gptq" and quant.get("checkpoint_format", "gptq") != "gptq_v2"
    return Scheme(method, group, zero_minus_one)


def _nibbles(words: torch.Tensor) -> torch.Tensor:
    """int32 [..., W] → int32 [..., W, 8]: code i at bits 4i."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=words.device)
    return (words[..., None] >> shifts) & 0x0F


def _along_outputs(words: torch.Tensor, awq: bool) -> torch.Tensor:
    """[rows, out / 8] words → [rows, out] codes (AWQ's interleaved order or in order)."""
    codes = _nibbles(words)
    if awq:
        codes = codes[..., _AWQ_ORDER]
    return codes.reshape(words.shape[0], -1)


def packed_layer(
    qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, rule: Scheme
) -> PackedWeight:
    """One layer's tensors as a PackedWeight [out, in]."""
    groups, out = scales.shape
    if rule.method == "awq":
        codes = _along_outputs(qweight, awq=True).t()
    else:
        codes = _nibbles(qweight.t()).reshape(qweight.shape[1], -1)
    in_features = codes.shape[1]
    zeros = _along_outputs(qzeros, awq=rule.method == "awq").float() + rule.zero_minus_one
    if codes.shape[0] != out or zeros.shape != (groups, out):
        raise ModelLoadError("invalid", "qweight, qzeros and scales disagree in shape")
    group = in_features if rule.group == -1 else rule.group
    if groups * group < in_features:
        raise ModelLoadError("invalid", f"{groups} groups of {group} cannot cover {in_features}")
    codes = codes.to(torch.uint8)  # [out, in]
    pairs = codes[:, 0::2] | (codes[:, 1::2] << 4)
    scale = scales.t().half().contiguous()
    offset = (-zeros.t() * scale.float()).contiguous()
    return PackedWeight(4, pairs.contiguous(), scale, offset, group, in_features)


def packed_sizes(folder: Path) -> dict[str, int]:
    """`<layer>.weight` → bytes in the packed form, from the files' headers."""
    sizes: dict[str, int] = {}
    for file in safetensors_files(folder):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if name.endswith(".scales"):
                    groups, out = handle.get_slice(name).get_shape()
                    words_name = name.removesuffix("scales") + "qweight"
                    rows, cols = handle.get_slice(words_name).get_shape()
                    in_features = rows if cols * 8 == out else rows * 8
                    codes = out * in_features // 2
                    sizes[name.removesuffix(".scales") + ".weight"] = codes + groups * out * 6
    return sizes


def iter_quantised(
    folder: Path, rule: Scheme, into: SourceWeights, model: str
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of the checkpoint in transformers naming: the
    quantised layers as `<layer>.weight`, handed over packed in `into.packed` when
    `into.keep` names them (a meta tensor is yielded), dequantised otherwise."""
    with ExitStack() as stack:
        handles: dict[str, Any] = {}
        try:
            for file in safetensors_files(folder):
                handle = stack.enter_context(safe_open(str(file), framework="pt"))
                handles.update(dict.fromkeys(handle.keys(), handle))
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError("invalid", f"{model}: unreadable weights: {exc}") from exc
        layers = {n.rsplit(".", 1)[0] for n in handles if n.endswith(_PARTS)}
        for layer in sorted(layers):
            missing = [p for p in _PARTS if f"{layer}.{p}" not in handles]
            if missing:
                raise ModelLoadError(
                    "invalid", f"{model}: layer {layer} has no {', '.join(missing)}"
                )
            tensors = [handles[f"{layer}.{p}"].get_tensor(f"{layer}.{p}") for p in _PARTS]
            packed = packed_layer(*tensors, rule)
            name = f"{layer}.weight"
            if name in into.keep:
                into.packed[name] = packed
                yield name, torch.empty(packed.out_features, packed.in_features, device="meta")
            else:
                yield name, packed.dequantize()
        for name, handle in handles.items():
            layer, part = name.rsplit(".", 1)
            # A layer's parts were read above; its g_idx is trivial without act-order.
            if layer not in layers or part == "bias":
                yield name, handle.get_tensor(name)
