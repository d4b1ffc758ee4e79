"""Per-row sampling parameters as tensors, and the counter-based random stream.

A row's randomness is a pure function of (seed, offset, token id): both the
Triton kernel and the torch reference hash those with the same 32-bit mixer, so
a seeded request reproduces its tokens whatever else shares the batch (and the
two implementations draw identical numbers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9


@dataclass
class SamplingRow:
    """One request's parameters in plain Python (what the engine knows per row)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    prompt_ids: Sequence[int] = ()
    output_ids: Sequence[int] = ()
    seed: int = 0
    offset: int = 0


@dataclass
class SamplingBatch:
    """Tensors on the logits' device; see docs/architecture.md for each field."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    repetition_penalty: torch.Tensor
    presence_penalty: torch.Tensor
    frequency_penalty: torch.Tensor
    penalty_ids: torch.Tensor
    output_counts: torch.Tensor
    seeds: torch.Tensor
    offsets: torch.Tensor

    @property
    def size(self) -> int:
        return self.temperature.shape[0]

    @classmethod
    def from_rows(
        cls, rows: Sequence[SamplingRow], device: torch.device | str = "cpu"
    ) -> SamplingBatch:
        """Build the tensors, collecting each row's unique ids (prompt + output)
        with their output counts; rows are padded with id -1 / count 0."""
        seen: list[list[int]] = []
        counts: list[list[int]] = []
        for row in rows:
            out = Counter(row.output_ids)
            ids = list(dict.fromkeys([*row.prompt_ids, *row.output_ids]))
            seen.append(ids)
            counts.append([out.get(i, 0) for i in ids])
        width = max((len(s) for s in seen), default=0)

        def pad(values: list[list[int]], fill: int, dtype: torch.dtype) -> torch.Tensor:
            data = [v + [fill] * (width - len(v)) for v in values]
            return torch.tensor(data, dtype=dtype, device=device).reshape(len(rows), width)

        def col(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor([getattr(r, name) for r in rows], dtype=dtype, device=device)

        return cls(
            temperature=col("temperature", torch.float32),
            top_k=col("top_k", torch.int32),
            top_p=col("top_p", torch.float32),
            min_p=col("min_p", torch.float32),
            repetition_penalty=col("repetition_penalty", torch.float32),
            presence_penalty=col("presence_penalty", torch.float32),
            frequency_penalty=col("frequency_penalty", torch.float32),
            penalty_ids=pad(seen, -1, torch.int64),
            output_counts=pad(counts, 0, torch.int32),
            seeds=col("seed", torch.int64),
            offsets=col("offset", torch.int64),
        )


def mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on uint32 values held in int64 (wrapping multiply)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def row_keys(seeds: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """One 32-bit key per row from its 64-bit seed and draw counter (int64 [B])."""
    s, o = seeds.long(), offsets.long()
    key = mix32((s & MASK32) ^ GOLDEN32)
    key = mix32(key ^ ((s >> 32) & MASK32))
    key = mix32(key ^ (o & MASK32))
    return mix32(key ^ ((o >> 32) & MASK32))


def exponentials(keys: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Exp(1) fp32 draws for token ``ids`` of rows with ``keys`` (broadcast).

    23 hashed bits make u = (bits + 0.5) / 2**23, exact in fp32 and never 0 or 1,
    so every draw lies in [EXP_MIN, 16.7]."""
    k = keys.long()
    h = mix32(mix32((ids.long() + k) & MASK32) ^ k)
    return -torch.log(((h >> 9).float() + 0.5) * (1.0 / (1 << 23)))


# The smallest draw exponentials() can return (u = 1 - 2**-24): bounds who may win a race.
EXP_MIN = float(-torch.log(torch.tensor(1.0 - 2.0**-24, dtype=torch.float32)))
