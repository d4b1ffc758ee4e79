"""Per-row sampling parameters as tensors, and the counter-based random stream.

`SamplingKnobs` and `SamplingRow` are the one table of sampling columns: each
field declared with `column()` is one [B] tensor of a `SamplingBatch`, one
static buffer of the CUDA-graph decode path, and (for the knobs) one setting of
the neuron's `SamplingParams`, which extends `SamplingKnobs`.

A row's randomness is a pure function of (seed, offset, token id): both the
Triton kernel and the torch reference hash those with the same 32-bit mixer, so
a seeded request reproduces its tokens whatever else shares the batch (and the
two implementations draw identical numbers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9


def column(default: float, dtype: torch.dtype) -> Any:
    """A dataclass field that is also a per-row tensor column of this dtype."""
    return field(default=default, metadata={"dtype": dtype})


@dataclass
class SamplingKnobs:
    """What a request may set; each default leaves the distribution as it is."""

    temperature: float = column(1.0, torch.float32)  # 0 → greedy
    top_k: int = column(0, torch.int32)  # 0 → off
    top_p: float = column(1.0, torch.float32)  # 1.0 → off
    min_p: float = column(0.0, torch.float32)  # 0.0 → off
    repetition_penalty: float = column(1.0, torch.float32)
    presence_penalty: float = column(0.0, torch.float32)
    frequency_penalty: float = column(0.0, torch.float32)

    @property
    def uses_penalties(self) -> bool:
        return any(getattr(self, name) != PENALTIES[name] for name in PENALTIES)

    def knobs(self) -> dict[str, Any]:
        """The knob values alone (for building a SamplingRow from a subclass)."""
        return {f.name: getattr(self, f.name) for f in fields(SamplingKnobs)}


@dataclass
class SamplingRow(SamplingKnobs):
    """One row in plain Python: the knobs, the draw state and the ids penalties read."""

    seed: int = column(0, torch.int64)
    offset: int = column(0, torch.int64)  # draws so far (tokens generated)
    prompt_ids: Sequence[int] = ()
    output_ids: Sequence[int] = ()


def _dtypes(cls: type) -> dict[str, torch.dtype]:
    return {f.name: f.metadata["dtype"] for f in fields(cls) if "dtype" in f.metadata}


KNOBS = _dtypes(SamplingKnobs)  # the settings a request may give
COLUMNS = _dtypes(SamplingRow)  # every tensor column of a batch: the knobs, seed, offset
PENALTIES: dict[str, float] = {
    name: getattr(SamplingKnobs, name)
    for name in ("repetition_penalty", "presence_penalty", "frequency_penalty")
}


def column_values(rows: Sequence[SamplingRow]) -> dict[str, list]:
    """Each column's values down the rows, as plain lists."""
    return {name: [getattr(row, name) for row in rows] for name in COLUMNS}


@dataclass
class SamplingBatch:
    """Tensors on the logits' device; see docs/architecture.md for each column."""

    columns: dict[str, torch.Tensor]  # one [B] tensor per entry of COLUMNS
    penalty_ids: torch.Tensor  # [B, L] unique ids seen (prompt + output), padded with -1
    output_counts: torch.Tensor  # [B, L] how often each occurs in the output, padded with 0

    @property
    def size(self) -> int:
        return self.columns["temperature"].shape[0]

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

        values = column_values(rows)
        return cls(
            columns={
                name: torch.tensor(values[name], dtype=dtype, device=device)
                for name, dtype in COLUMNS.items()
            },
            penalty_ids=pad(seen, -1, torch.int64),
            output_counts=pad(counts, 0, torch.int32),
        )

    @classmethod
    def without_penalties(cls, columns: dict[str, torch.Tensor]) -> SamplingBatch:
        """A batch over existing column tensors (the CUDA graph's buffers) that reads no ids."""
        rows, device = columns["temperature"].shape[0], columns["temperature"].device
        return cls(
            columns={name: columns[name] for name in COLUMNS},
            penalty_ids=torch.zeros(rows, 0, dtype=torch.int64, device=device),
            output_counts=torch.zeros(rows, 0, dtype=torch.int32, device=device),
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
