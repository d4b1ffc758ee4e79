"""The inputs of one decode step, built in one place for the eager and the CUDA-graph path.

A decode step feeds each running sequence's last token at its position, writes
its key/value into the cache slot of that position and attends over the
sequence's block table. The eager runner asks for exactly its rows and the
widest table in the batch; the CUDA-graph path asks for its bucket's rows and
its fixed table width, and the extra rows repeat row 0 (see cuda_graphs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuron.engine.sequence import Sequence
from neuron.models.attention import AttentionMetadata

# The per-row model inputs of a decode step and their dtypes.
DECODE_COLUMNS: dict[str, torch.dtype] = {
    "input_ids": torch.int64,
    "positions": torch.int64,
    "slot_mapping": torch.int64,
    "context_lens": torch.int32,
}


@dataclass
class DecodeInputs:
    """Host-side values: one list per entry of DECODE_COLUMNS, and the block tables."""

    columns: dict[str, list[int]]
    block_tables: list[list[int]]  # each padded with block 0 (entries past a context are unread)

    def to(self, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        columns = {
            name: torch.tensor(values, dtype=DECODE_COLUMNS[name], device=device)
            for name, values in self.columns.items()
        }
        return columns, torch.tensor(self.block_tables, dtype=torch.int32, device=device)


def cache_slot(block_table: list[int], position: int, block_size: int) -> int:
    """Where a position's key/value lives: block * block_size + offset in the block."""
    return block_table[position // block_size] * block_size + position % block_size


def decode_inputs(
    seqs: list[Sequence], block_size: int, rows: int | None = None, width: int | None = None
) -> DecodeInputs:
    """One decode step's inputs, padded to `rows` rows (by repeating row 0) and tables
    `width` blocks wide; by default exactly the batch and its widest table."""
    rows = len(seqs) if rows is None else rows
    width = max(len(s.block_table) for s in seqs) if width is None else width
    if not 0 < len(seqs) <= rows:
        raise ValueError(f"{len(seqs)} sequences do not fit a bucket of {rows}")
    columns: dict[str, list[int]] = {name: [] for name in DECODE_COLUMNS}
    tables: list[list[int]] = []
    for seq in seqs:
        if len(seq.block_table) > width:
            raise ValueError(f"block table of {len(seq.block_table)} exceeds width {width}")
        position = seq.num_tokens - 1
        columns["input_ids"].append(seq.token_ids[-1])
        columns["positions"].append(position)
        columns["slot_mapping"].append(cache_slot(seq.block_table, position, block_size))
        columns["context_lens"].append(seq.num_tokens)
        tables.append(seq.block_table + [0] * (width - len(seq.block_table)))
    for values in columns.values():
        values += values[:1] * (rows - len(seqs))
    tables += tables[:1] * (rows - len(seqs))
    return DecodeInputs(columns, tables)


def decode_metadata(
    columns: dict[str, torch.Tensor], block_tables: torch.Tensor
) -> AttentionMetadata:
    """The attention layers' view of a decode step's device tensors."""
    return AttentionMetadata(
        is_prefill=False,
        slot_mapping=columns["slot_mapping"],
        block_tables=block_tables,
        context_lens=columns["context_lens"],
    )
