"""Weight-only int8 linears for CPU decode.

A small model's decode step on CPU is bound by reading its weights from memory, so
storing them as int8 (one symmetric scale per output channel) cuts the bytes per
token by 4x against fp32. Activations stay bf16: `_weight_int8pack_mm` is fast only
with bf16 inputs (several times slower with fp32 ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

QUANTIZATIONS = ("none", "int8")

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


def quantize_linears(model: nn.Module, names: frozenset[str]) -> None:
    """Swap every parameter called one of `names`, in any submodule, for an Int8Linear.

    Tied names are visited one by one: a tied lm_head gets its int8 copy while the
    embedding, under its own name, keeps the dense tensor.
    """
    for module in list(model.modules()):
        params = module.named_parameters(recurse=False, remove_duplicate=False)
        for name, weight in list(params):
            if name in names:
                delattr(module, name)  # a parameter slot cannot take a module
                setattr(module, name, Int8Linear(weight))


def linear(
    x: torch.Tensor, weight: torch.Tensor | Int8Linear, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """F.linear for a dense weight, the int8 kernel for a quantised one."""
    if isinstance(weight, torch.Tensor):
        return F.linear(x, weight, bias)
    return weight(x, bias)
