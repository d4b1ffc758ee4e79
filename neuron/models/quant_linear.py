"""Weight-only packed linears for CPU decode: int8 per channel, int4 per group of 32, and
fp16 in fbgemm's layout; and for the GPU, int4 / int8 codes with group scales
(`GroupQuantLinear`, through our Triton kernel).

A small model's decode step on CPU is bound by reading its weights, so holding them
packed cuts the bytes per token (int8: 4x, int4: ~6x, fp16: 2x against fp32). torch's
int8 and int4 kernels (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`) are fast
only with bf16 inputs (an order of magnitude slower with fp32 or fp16 ones), which only
CPUs with bf16 instructions (AVX512-BF16, AMX) compute natively. So on x86, 4-bit
weights go through our own x86 kernels (neuron_kernels/cpu), fp32 activations in and out, and
torch's int4 kernel serves only where those cannot run. fbgemm's fp16 GEMM widens the
weights in registers and keeps the activations in fp32: on an AVX2 EPYC 2.3x torch's
int4 kernel's speed at 16 rows and 2.1x at 512 (one matmul, weights in cache).
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from neuron.models.gguf_codes import GROUP, GroupCodes
from neuron_kernels import PackedWeight, quant_matmul
from neuron_kernels.cpu import cpu_kernels

# `_weight_int8pack_mm` walks the rows one by one, so it loses to a dense bf16 matmul
# (on weights widened on the fly) beyond a handful of rows: decode uses the former,
# prefill the latter.
PACKED_MAX_ROWS = 16


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: weight ≈ q * scale[:, None], |q| ≤ 127."""
    w = weight.float()
    scale = w.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale


def quantize_groups(weight: torch.Tensor) -> GroupCodes:
    """Asymmetric 4-bit per run of 32 along each row (min/max): for dense weights that
    have no 4-bit codes of their own."""
    w = weight.float().view(weight.shape[0], -1, GROUP)
    low, high = w.amin(dim=2), w.amax(dim=2)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
    codes = torch.round((w - low[..., None]) / scale[..., None]).clamp(0, 15)
    return GroupCodes(codes.to(torch.uint8).view(weight.shape), scale, low)


class Int8Linear(nn.Module):
    """y = x @ dequant(W).T + b with W held as int8 [N, K] and bf16 scales [N]."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        q, scale = quantize_per_channel(weight)
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scale.to(torch.bfloat16))

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] in bf16 (other dtypes are cast) → [..., N] in bf16."""
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        if rows.shape[0] <= PACKED_MAX_ROWS:
            out = torch.ops.aten._weight_int8pack_mm(rows, self.qweight, self.scales)
        else:
            # Per-channel scales commute with the matmul: scale the output, not the weight.
            out = F.linear(rows, self.qweight.to(torch.bfloat16)) * self.scales
        if bias is not None:
            out = out + bias
        return out.view(*x.shape[:-1], self.out_features)


class Int4Linear(nn.Module):
    """y = x @ dequant(W).T + b with W packed as torch's CPU int4 layout, one bf16 scale
    and zero per output channel and run of 32 inputs: w = (code - 8) * scale + zero."""

    def __init__(self, codes: GroupCodes) -> None:
        super().__init__()
        self.out_features = codes.codes.shape[0]
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.codes.int(), 1)
        zero = codes.offset + 8 * codes.scale
        scales_zeros = torch.stack((codes.scale.t(), zero.t()), dim=-1).contiguous()
        self.register_buffer("packed", packed)
        self.register_buffer("scales_zeros", scales_zeros.to(torch.bfloat16))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] in bf16 (other dtypes are cast) → [..., N] in bf16."""
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows, self.packed, GROUP, self.scales_zeros
        )
        if bias is not None:
            out = out + bias
        return out.view(*x.shape[:-1], self.out_features)


class Int4X86Linear(nn.Module):
    """The same 4-bit weights (scale and offset in fp16, GGUF's own precision for Q4_0 and
    Q4_1) through our x86 kernels (neuron_kernels/cpu: AVX2, and AVX512-VNNI from 2 rows where
    the CPU has it): fp32 activations, fp32 out. A pass of many rows (a prompt) widens the
    weights to fp32 for one dense matmul instead."""

    DENSE_FROM_ROWS = 48  # measured: the dense matmul is the faster from 32 to 64 rows

    def __init__(self, codes: GroupCodes) -> None:
        super().__init__()
        n, k = codes.codes.shape
        self.out_features = n
        runs = codes.codes.view(n, k // GROUP, 2, GROUP // 2)  # byte j: code j | code j+16 << 4
        self.register_buffer("codes", (runs[:, :, 0] | runs[:, :, 1] << 4).reshape(n, k // 2))
        self.register_buffer("scale", codes.scale.half())
        self.register_buffer("offset", codes.offset.half())

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] (any float dtype) → [..., N] in fp32."""
        rows = x.reshape(-1, x.shape[-1]).float()
        if rows.shape[0] < self.DENSE_FROM_ROWS:
            out = torch.ops.neuron_cpu.int4_linear(rows, self.codes, self.scale, self.offset)
        else:
            weight = torch.ops.neuron_cpu.int4_dequantize(self.codes, self.scale, self.offset)
            out = F.linear(rows, weight)
        if bias is not None:
            out = out + bias
        return out.view(*x.shape[:-1], self.out_features)


def int4_linear(codes: GroupCodes) -> Int4Linear | Int4X86Linear:
    """4-bit weights through our kernels wherever they run (x86 with AVX2), torch's
    elsewhere. Ours are also the closer to the exact product (fp32 rather than bf16
    activations): on SmolLM2 top-1 agreement with the fp32 model rose from 98.9% to 99.95%."""
    if cpu_kernels():
        return Int4X86Linear(codes)
    return Int4Linear(codes)


# fbgemm's packed weights are an opaque object that torch.compile cannot trace, so the
# linear is an operator of ours that takes a key to them: the compiled graph calls it as
# is. It is registered through `torch.library.Library`, whose dispatch costs a quarter
# of `torch.library.custom_op`'s (measured: 7 against 30 µs per call).
_FP16_WEIGHTS: dict[int, torch.ScriptObject] = {}
_LIBRARY = torch.library.Library("neuron", "DEF")
_LIBRARY.define("fp16_linear(Tensor rows, int key, int out_features) -> Tensor")


def _fp16_linear(rows: torch.Tensor, key: int, out_features: int) -> torch.Tensor:
    return torch.ops.quantized.linear_dynamic_fp16(rows, _FP16_WEIGHTS[key])


_LIBRARY.impl("fp16_linear", _fp16_linear, "CPU")


@torch.library.register_fake("neuron::fp16_linear", lib=_LIBRARY)
def _(rows: torch.Tensor, key: int, out_features: int) -> torch.Tensor:
    return rows.new_empty(rows.shape[0], out_features)


def fbgemm_available() -> bool:
    """fbgemm's kernels exist only in x86 builds of torch."""
    return "fbgemm" in torch.backends.quantized.supported_engines


class Fp16Linear(nn.Module):
    """y = x @ W.T + b with W held as fp16 in fbgemm's packed layout; x and y in fp32."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.out_features, in_features = weight.shape
        self.key = id(self)
        _FP16_WEIGHTS[self.key] = torch.ops.quantized.linear_prepack_fp16(
            weight.float().contiguous(), None
        )
        weakref.finalize(self, _FP16_WEIGHTS.pop, self.key, None)
        self.opaque_nbytes = 2 * self.out_features * in_features  # not a buffer: counted apart

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] (any float dtype) → [..., N] in fp32."""
        rows = x.reshape(-1, x.shape[-1]).float()
        out = torch.ops.neuron.fp16_linear(rows, self.key, self.out_features)
        if bias is not None:
            out = out + bias
        return out.view(*x.shape[:-1], self.out_features)


def linear(
    x: torch.Tensor, weight: torch.Tensor | PackedLinear, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """F.linear for a dense weight, the packed kernel for a quantised one."""
    if isinstance(weight, torch.Tensor):
        return F.linear(x, weight, bias)
    return weight.forward(x, bias)


class GroupQuantLinear(nn.Module):
    """y = x @ dequant(W).T + b with W as int4 / int8 codes and group scales (the GPU
    form, neuron_kernels.PackedWeight) through `neuron_kernels.quant_matmul`: the Triton
    kernel on CUDA. The rows may come in parts of different layouts (a fused QKV whose V
    is stored with more bits): each part is one matmul, the outputs side by side."""

    def __init__(self, parts: list[PackedWeight], dtype: torch.dtype) -> None:
        super().__init__()
        merged: list[PackedWeight] = []
        for part in parts:
            if merged and merged[-1].layout() == part.layout():
                merged[-1] = PackedWeight.cat([merged[-1], part])
            else:
                merged.append(part)
        self.dtype = dtype
        self.out_features = sum(p.out_features for p in merged)
        self._layouts = [p.map_rows(lambda t: t.new_empty(0)) for p in merged]
        for index, part in enumerate(merged):
            for name, tensor in part.tensors().items():
                self.register_buffer(f"part{index}_{name}", tensor)

    def parts(self) -> list[PackedWeight]:
        """The packed weights as they are held now (after any move of the module)."""
        return [
            replace(layout, **{n: getattr(self, f"part{i}_{n}") for n in layout.tensors()})
            for i, layout in enumerate(self._layouts)
        ]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] (cast to the model's dtype) → [..., N] in the model's dtype."""
        rows = x.reshape(-1, x.shape[-1]).to(self.dtype)
        outs = [quant_matmul(rows, part) for part in self.parts()]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        if bias is not None:
            out = out + bias
        return out.view(*x.shape[:-1], self.out_features)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows `ids` dequantised: the vocabulary matrix used as the embedding."""
        (part,) = self.parts()
        return part.map_rows(lambda t: t[ids]).dequantize().to(self.dtype)


PackedLinear = Int8Linear | Int4Linear | Int4X86Linear | Fp16Linear | GroupQuantLinear
