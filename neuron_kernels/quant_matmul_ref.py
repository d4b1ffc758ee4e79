"""Weight-only quantised matmul: the packed-weight type and its torch reference.

`PackedWeight` is the one form quantised weights take on the GPU (GGUF, AWQ and GPTQ
are all read into it): integer codes along each row in groups along K, each group with
a scale and an optional offset, and for GGUF's K-quants a second level of fp16 scales
per run of groups (their 6-bit sub-scales times the super-block scale), so the file's
numbers are kept exactly and in about the file's size:

    w[n, k] = (code[n, k] - zero) * scale[n, k // group] + offset[n, k // group]
    (scale and offset each times super_scale / super_offset[n, k // (group * supergroup)])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch


@dataclass
class PackedWeight:
    """A [N, K] weight as codes and group scales (every tensor has N rows).

    bits 4: codes uint8 [N, K / 2], code 2i in the low nibble of byte i, 2i + 1 in the
    high one; bits 8: codes int8 [N, K]."""

    bits: int
    codes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor | None
    group: int
    in_features: int
    zero: int = 0
    super_scale: torch.Tensor | None = None
    super_offset: torch.Tensor | None = None
    supergroup: int = 1

    @property
    def out_features(self) -> int:
        return self.codes.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor fields that are set, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }

    def map_rows(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PackedWeight:
        """The same weight with `fn` applied to every tensor (a row permutation, a move)."""
        return replace(self, **{name: fn(t) for name, t in self.tensors().items()})

    def layout(self) -> tuple:
        """What must agree for two weights' rows to be stacked into one."""
        return (
            self.bits,
            self.group,
            self.in_features,
            self.zero,
            self.supergroup,
            *((n, t.dtype) for n, t in self.tensors().items() if n != "codes"),
        )

    @staticmethod
    def cat(parts: list[PackedWeight]) -> PackedWeight:
        """Row-wise concatenation of weights with one layout (fused QKV, gate/up)."""
        first = parts[0]
        if any(p.layout() != first.layout() for p in parts):
            raise ValueError("only weights with one layout can be stacked")
        stacked = {n: torch.cat([p.tensors()[n] for p in parts]) for n in first.tensors()}
        return replace(first, **stacked)

    def unpacked_codes(self) -> torch.Tensor:
        """Codes as int32 [N, K] (for 4 bits: [N, K rounded up to even])."""
        if self.bits == 8:
            return self.codes.int()
        low, high = self.codes & 0x0F, self.codes >> 4
        return torch.stack((low, high), dim=-1).reshape(self.out_features, -1).int()

    def dequantize(self) -> torch.Tensor:
        """The weight as fp32 [N, K], computed as the kernels compute it."""
        k = self.in_features

        def per_column(t: torch.Tensor | None, size: int) -> torch.Tensor | None:
            return None if t is None else t.float().repeat_interleave(size, dim=1)[:, :k]

        scale = per_column(self.scale, self.group)
        offset = per_column(self.offset, self.group)
        span = self.group * self.supergroup
        if self.super_scale is not None:
            scale = scale * per_column(self.super_scale, span)
        if offset is not None and self.super_offset is not None:
            offset = offset * per_column(self.super_offset, span)
        w = (self.unpacked_codes()[:, :k] - self.zero).float() * scale
        return w if offset is None else w + offset


def quant_matmul_ref(x: torch.Tensor, weight: PackedWeight) -> torch.Tensor:
    """x [M, K] (bf16, fp16 or fp32) @ dequant(W).T → [M, N] in x's dtype: the weights
    rounded to x's dtype, the products summed in fp32 (what the kernels do)."""
    w = weight.dequantize().to(x.dtype).float()
    return (x.float() @ w.t()).to(x.dtype)
