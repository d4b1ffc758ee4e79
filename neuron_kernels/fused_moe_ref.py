"""The torch reference of the fused MoE kernel: every token-expert pair on its own.

Plain and slow on purpose (each pair gathers its expert's weights): the numbers the Triton
kernel (`fused_moe_triton.py`) is held to, and what a CUDA MoE block falls back to where
Triton is missing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fused_moe_ref(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """sum_j weights[t, j] * down[e] @ (silu(g) * u), (g, u) = gate_up[e] @ x[t], e = ids[t, j].

    x [T, H]; gate_up [E, 2I, H] (gate rows first); down [E, H, I]; ids int [T, k];
    weights fp32 [T, k]. Returns [T, H] in x's dtype, accumulated in fp32."""
    top_k = ids.shape[1]
    flat = ids.flatten().long()
    rows = x.repeat_interleave(top_k, dim=0).float()  # pair p = t * k + j
    gate, up = torch.bmm(gate_up[flat].float(), rows[:, :, None])[..., 0].chunk(2, dim=-1)
    out = torch.bmm(down[flat].float(), (F.silu(gate) * up)[:, :, None])[..., 0]
    out = out * weights.reshape(-1, 1).float()
    return out.view(-1, top_k, x.shape[1]).sum(dim=1).to(x.dtype)
