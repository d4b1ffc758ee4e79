"""Launch settings shared by the Triton kernels."""

from __future__ import annotations

import torch

from neuron_kernels.dispatch import interpreting


def upcast(t: torch.Tensor) -> bool:
    """Do the math in fp32 after loading: always for fp32 inputs, and for every
    dtype in the interpreter, whose bf16 arithmetic is wrong."""
    return t.dtype == torch.float32 or interpreting()


def dot_precision(t: torch.Tensor) -> str:
    """fp32 inputs must not be silently rounded to tf32 on the tensor cores."""
    return "ieee" if t.dtype == torch.float32 else "tf32"


def pow2(n: int, floor: int = 16) -> int:
    """Smallest power of two >= n (and >= floor, the minimum tl.dot extent)."""
    return max(floor, 1 << max(0, n - 1).bit_length())
