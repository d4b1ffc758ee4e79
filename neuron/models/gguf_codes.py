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

from neuron_kernels.quant_matmul_ref import PackedWeight

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


# The GPU form (neuron_kernels.PackedWeight): 4-bit types as int4, the 5-, 6- and 8-bit
# ones as int8 codes, each with the scales (and offsets) the file stores, so that
# dequantising the packed weight gives gguf's own floats bit for bit.
PACKABLE = frozenset({Q.Q4_0, Q.Q4_1, Q.Q4_K, Q.Q5_0, Q.Q5_1, Q.Q5_K, Q.Q6_K, Q.Q8_0})
_BLOCK_BYTES = {
    Q.Q4_0: 18, Q.Q4_1: 20, Q.Q4_K: 144, Q.Q5_0: 22, Q.Q5_1: 24, Q.Q5_K: 176, Q.Q6_K: 210,
    Q.Q8_0: 34,
}  # fmt: skip


def _fifth_bits(qh: np.ndarray, n: int, count: int) -> np.ndarray:
    """Bit i of each block's little-endian high-bit field, for i < count."""
    bits = np.unpackbits(qh.reshape(n, -1), axis=1, bitorder="little")
    return bits[:, :count]


@dataclass
class _Parts:
    """One tensor's fields as numpy, one row of blocks per GGUF block."""

    codes: np.ndarray  # [B, block]
    scale: np.ndarray  # [B, block / group]
    offset: np.ndarray | None
    group: int
    zero: int = 0
    super_scale: np.ndarray | None = None  # [B, 1]
    super_offset: np.ndarray | None = None


def _parts(raw: np.ndarray, kind: Q) -> _Parts:
    n = raw.shape[0]
    f16 = lambda b: b.copy().view(np.float16)  # noqa: E731 (the file's scales as stored)
    if kind in (Q.Q4_0, Q.Q4_1):
        head = 2 if kind == Q.Q4_0 else 4
        codes = _nibbles(raw[:, head:], n, 16)
        offset = None if kind == Q.Q4_0 else f16(raw[:, 2:4])
        return _Parts(codes, f16(raw[:, :2]), offset, 32, zero=8 if kind == Q.Q4_0 else 0)
    if kind == Q.Q8_0:
        return _Parts(raw[:, 2:].copy().view(np.int8), f16(raw[:, :2]), None, 32)
    if kind in (Q.Q5_0, Q.Q5_1):
        head = 2 if kind == Q.Q5_0 else 4
        low = _nibbles(raw[:, head + 4 :], n, 16)
        codes = low | (_fifth_bits(raw[:, head : head + 4], n, 32) << 4)
        offset = None if kind == Q.Q5_0 else f16(raw[:, 2:4])
        return _Parts(codes.astype(np.int8), f16(raw[:, :2]), offset, 32, zero=16 * (head == 2))
    if kind in (Q.Q4_K, Q.Q5_K):
        sc, mins = Q4_K.get_scale_min(raw[:, 4 : 4 + Q4_K.K_SCALE_SIZE])
        rest = raw[:, 4 + Q4_K.K_SCALE_SIZE :]
        if kind == Q.Q4_K:
            codes = _nibbles(rest, n, 32)
        else:
            high = np.unpackbits(rest[:, :32].reshape(n, 1, 32), axis=1, bitorder="little")
            codes = (_nibbles(rest[:, 32:], n, 32) | (high.reshape(n, 256) << 4)).astype(np.int8)
        return _Parts(
            codes, sc.astype(np.uint8), mins.astype(np.uint8), 32,
            super_scale=f16(raw[:, :2]), super_offset=-f16(raw[:, 2:4]),
        )  # fmt: skip
    # Q6_K: 4 low bits in ql, 2 high bits in qh, int8 scales per 16, fp16 d at the end.
    ql = raw[:, :128].reshape(n, -1, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    qh = raw[:, 128:192].reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(
        1, 1, 4, 1
    )
    q = (ql & 0x0F).reshape(n, -1, 32) | ((qh & 0x03).reshape(n, -1, 32) << 4)
    codes = (q.reshape(n, 256).astype(np.int16) - 32).astype(np.int8)
    return _Parts(
        codes, raw[:, 192:208].copy().view(np.int8), None, 16, super_scale=f16(raw[:, 208:])
    )


def packed_weight(tensor: Any) -> PackedWeight | None:
    """A GGUF reader tensor in the GPU's packed form ([out, in]); None for float types."""
    kind = tensor.tensor_type
    if kind not in PACKABLE:
        return None
    rows, cols = (int(d) for d in reversed(tensor.shape))
    raw = np.asarray(tensor.data).reshape(-1, _BLOCK_BYTES[kind])
    parts = _parts(raw, kind)
    as_rows = lambda a: None if a is None else torch.from_numpy(a.reshape(rows, -1).copy())  # noqa: E731
    codes = parts.codes.reshape(rows, cols)
    bits = 4 if kind in FOUR_BIT else 8
    if bits == 4:
        codes = codes[:, 0::2] | (codes[:, 1::2] << 4)
    span = (256 if parts.super_scale is not None else parts.group) // parts.group
    return PackedWeight(
        bits=bits,
        codes=torch.from_numpy(np.ascontiguousarray(codes)),
        scale=as_rows(parts.scale),
        offset=as_rows(parts.offset),
        group=parts.group,
        in_features=cols,
        zero=parts.zero,
        super_scale=as_rows(parts.super_scale),
        super_offset=as_rows(parts.super_offset),
        supergroup=span,
    )


# Bytes of the packed form per kind: (bits, group, scale + offset bytes per group,
# super-scale bytes per 256 weights).
_PACKED_SIZES = {
    Q.Q4_0: (4, 32, 2, 0), Q.Q4_1: (4, 32, 4, 0), Q.Q4_K: (4, 32, 2, 4), Q.Q8_0: (8, 32, 2, 0),
    Q.Q5_0: (8, 32, 2, 0), Q.Q5_1: (8, 32, 4, 0), Q.Q5_K: (8, 32, 2, 4), Q.Q6_K: (8, 16, 1, 2),
}  # fmt: skip


def packed_nbytes(kind: Q, rows: int, cols: int) -> int:
    """What `packed_weight` of a [rows, cols] tensor of `kind` holds, without reading it."""
    bits, group, per_group, per_super = _PACKED_SIZES[kind]
    return rows * (cols * bits // 8 + cols // group * per_group + cols // 256 * per_super)
