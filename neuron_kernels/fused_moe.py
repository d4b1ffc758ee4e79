"""The routed experts of a MoE block on a GPU: Triton's fused kernel, or its reference."""

from __future__ import annotations

import torch

from neuron_kernels.dispatch import use_triton
from neuron_kernels.fused_moe_ref import fused_moe_ref


def fused_moe(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """x [T, H] through experts gate_up [E, 2I, H] and down [E, H, I], token t summed over
    its experts ids[t] with weights[t] (see `fused_moe_ref`)."""
    if use_triton(x):
        from neuron_kernels.fused_moe_triton import fused_moe_triton

        return fused_moe_triton(x, gate_up, down, ids, weights)
    return fused_moe_ref(x, gate_up, down, ids, weights)
