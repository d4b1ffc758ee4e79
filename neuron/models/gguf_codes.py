"""GGUF's 4-bit blocks read as integer codes with group scales, not as floats.

Q4_0, Q4_1 and Q4_K all store each run of 32 weights along a row as
`w = scale * code + offset` with codes 0..15, which is exactly what torch's
weight-only int4 CPU kernel computes; reading the codes keeps the file's numbers
instead of re-quantising its dequantised floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import Q4_K

GROUP = 32
FOUR_BIT = frozenset({Q.Q4_0, Q.Q4_1, Q.Q4_K})


@dataclass
class GroupCodes:
    """codes uint8 [N, K] in 0..15; scale and offset fp32 [N, K / GROUP]."""

    codes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def dequantize(self) -> torch.Tensor:
        expand = lambda t: t.repeat_interleave(GROUP, dim=1)  # noqa: E731
        return self.codes.float() * expand(self.scale) + expand(self.offset)

    def expert(self, index: int) -> GroupCodes:
        """One expert's codes out of a stacked [E, N, K] tensor's."""
        return GroupCodes(self.codes[index], self.scale[index], self.offset[index])

    @staticmethod
    def cat(parts: list[GroupCodes]) -> GroupCodes:
        """Row-wise concatenation (the fused QKV and gate/up weights; per expert where
        stacked)."""
        return GroupCodes(
            torch.cat([p.codes for p in parts], dim=-2),
            torch.cat([p.scale for p in parts], dim=-2),
            torch.cat([p.offset for p in parts], dim=-2),
        )


def _nibbles(qs: np.ndarray, n_blocks: int, width: int) -> np.ndarray:
    """Low nibbles first, then high ones, per run of `width` bytes (ggml's layout)."""
    shifted = qs.reshape(n_blocks, -1, 1, width) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (shifted & np.uint8(0x0F)).reshape(n_blocks, -1)


def _f16(raw: np.ndarray) -> np.ndarray:
    return raw.view(np.float16).astype(np.float32)


def _blocks(raw: np.ndarray, kind: Q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [B, 32 * groups], scale [B, groups], offset [B, groups]) of raw blocks."""
    n = raw.shape[0]
    if kind == Q.Q4_0:
        d = _f16(raw[:, :2])
        return _nibbles(raw[:, 2:], n, 16), d, -8.0 * d
    if kind == Q.Q4_1:
        d, m = _f16(raw[:, :2]), _f16(raw[:, 2:4])
        return _nibbles(raw[:, 4:], n, 16), d, m
    d, dmin = _f16(raw[:, :2]), _f16(raw[:, 2:4])
    sc, mins = Q4_K.get_scale_min(raw[:, 4 : 4 + Q4_K.K_SCALE_SIZE])
    codes = _nibbles(raw[:, 4 + Q4_K.K_SCALE_SIZE :], n, 32)
    return codes, d * sc.astype(np.float32), -dmin * mins.astype(np.float32)


def group_codes(tensor: Any) -> GroupCodes | None:
    """A GGUF reader tensor's codes in [out, in] layout ([E, out, in] for stacked experts);
    None if it is not 4-bit."""
    if tensor.tensor_type not in FOUR_BIT:
        return None
    *rows, cols = (int(d) for d in reversed(tensor.shape))
    raw = np.asarray(tensor.data).reshape(-1, tensor.data.shape[-1])
    block_bytes = {Q.Q4_0: 18, Q.Q4_1: 20, Q.Q4_K: 144}[tensor.tensor_type]
    codes, scale, offset = _blocks(raw.reshape(-1, block_bytes), tensor.tensor_type)
    return GroupCodes(
        torch.from_numpy(codes.reshape(*rows, cols).copy()),
        torch.from_numpy(scale.reshape(*rows, cols // GROUP).copy()),
        torch.from_numpy(offset.reshape(*rows, cols // GROUP).copy()),
    )
