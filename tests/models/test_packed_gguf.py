"""GGUF tensors read into the GPU's packed form: every quantised type we read keeps its
values exactly (against gguf's own dequantisation), at about the file's size."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from neuron.models.gguf_codes import PACKABLE, packed_nbytes, packed_weight

Q = gguf.GGMLQuantizationType
# Stored bytes per weight in the packed form over the file's: 4-bit types stay at the
# file's size (Q4_K: +1/36, its 6-bit sub-scales held as bytes); the 5- and 6-bit ones
# widen to int8 codes.
SIZE_RATIO = {Q.Q4_0: 1.0, Q.Q4_1: 1.0, Q.Q4_K: 1.03, Q.Q8_0: 1.0, Q.Q5_0: 1.55,
              Q.Q5_1: 1.5, Q.Q5_K: 1.57, Q.Q6_K: 1.31}  # fmt: skip


class _Tensor:
    """The fields of a GGUF reader tensor that packed_weight reads."""

    def __init__(self, kind: Q, raw: np.ndarray, rows: int, cols: int) -> None:
        self.tensor_type, self.data, self.shape = kind, raw, [cols, rows]


def random_blocks(kind: Q, rows: int, cols: int, seed: int) -> np.ndarray:
    """Blocks of `kind`: gguf's quantiser where it has one, else random bytes with small
    finite fp16 super-scales (gguf cannot quantise the K types)."""
    gen = np.random.default_rng(seed)
    if kind in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        size = gguf.GGML_QUANT_SIZES[kind][1]
        raw = gen.integers(0, 256, (rows * cols // 256, size), dtype=np.uint8)
        scales = [(0, 0.01), (2, 0.002)] if kind != Q.Q6_K else [(208, 0.003)]
        for at, value in scales:
            raw[:, at : at + 2] = np.full(len(raw), value, np.float16).view(np.uint8).reshape(-1, 2)
        return raw.reshape(rows, -1)
    return gguf.quants.quantize(gen.standard_normal((rows, cols), np.float32), kind)


@pytest.mark.parametrize("kind", sorted(PACKABLE, key=int))
def test_packed_form_is_lossless(kind: Q) -> None:
    rows, cols = 6, 512
    raw = random_blocks(kind, rows, cols, int(kind))
    packed = packed_weight(_Tensor(kind, raw, rows, cols))
    expected = torch.from_numpy(gguf.quants.dequantize(raw, kind).reshape(rows, cols))
    assert packed is not None and packed.bits == (4 if kind in (Q.Q4_0, Q.Q4_1, Q.Q4_K) else 8)
    assert torch.equal(packed.dequantize(), expected), kind.name
    assert packed.nbytes / raw.nbytes == pytest.approx(SIZE_RATIO[kind], abs=0.01)
    assert packed.nbytes == packed_nbytes(kind, rows, cols)


def test_float_tensors_are_not_packed() -> None:
    raw = np.zeros((4, 64), np.float16)
    assert packed_weight(_Tensor(Q.F16, raw, 4, 64)) is None
