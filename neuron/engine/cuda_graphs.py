"""The CUDA decode fast path: each decode step replays a captured CUDA graph.

A small model's decode step on a GPU is a few hundred tiny kernels; launching
them one by one from Python costs more than running them. So a decode step is
captured once per batch-size bucket (1, 2, 4, 8, 16, 32, then steps of 32) and
replayed: the host only copies the step's inputs into static buffers, replays,
and reads the sampled token ids back (the one synchronisation of a step).

A batch is padded to its bucket by repeating its first row: the padded rows
compute exactly what row 0 computes and write the same key/value to the same
cache slot, so they change nothing (the cache store needs a valid slot for
every row, and no slot is free for sure). Sampling runs inside the graph with
the per-row temperature, top-k/p, min-p and seed; a batch that asks for
penalties, logprobs, a grammar or a logit bias samples outside it from the
graph's logits instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

import neuron_kernels as kernels
from neuron.engine.decode_inputs import DECODE_COLUMNS, decode_inputs, decode_metadata
from neuron.engine.sampler import SampledLogprobs, sample, sampling_columns
from neuron.engine.sequence import Sequence
from neuron.models.attention import KVCache
from neuron.models.llama import LlamaForCausalLM
from neuron_kernels.sampling import COLUMNS, SamplingBatch

log = logging.getLogger(__name__)
MAX_GRAPH_BATCH = 256
# Every static buffer: the decode step's model inputs, then the sampler's columns.
COLUMN_DTYPES: dict[str, torch.dtype] = {**DECODE_COLUMNS, **COLUMNS}


def graphs_enabled(device: torch.device) -> bool:
    """On for CUDA devices unless NEURON_CUDA_GRAPHS=0; never on CPU."""
    return device.type == "cuda" and os.environ.get("NEURON_CUDA_GRAPHS", "1") != "0"


def bucket_sizes(max_batch: int = MAX_GRAPH_BATCH) -> list[int]:
    """Powers of two up to 32, then multiples of 32 (padding wastes at most a step's half
    at small sizes, and under a 32-row tail at large ones)."""
    sizes = [s for s in (1, 2, 4, 8, 16, 32) if s <= max_batch]
    sizes += range(64, max_batch + 1, 32)
    return sizes


def bucket_for(n: int, sizes: list[int]) -> int | None:
    """The smallest bucket holding n rows; None when the batch is too large for any."""
    return next((s for s in sizes if s >= n), None)


def decode_columns(
    seqs: list[Sequence], block_size: int, bucket: int, width: int
) -> tuple[dict[str, list], list[list[int]]]:
    """Host-side inputs of one graphed decode step (see COLUMN_DTYPES), padded to `bucket`
    rows by repeating row 0 (greedy, for the sampler), and the block tables `width` wide."""
    step = decode_inputs(seqs, block_size, rows=bucket, width=width)
    return {**step.columns, **sampling_columns(seqs, bucket)}, step.block_tables


class StaticDecodeInputs:
    """Device buffers sized for the largest bucket; a bucket's graph reads their first rows."""

    def __init__(self, rows: int, width: int, device: torch.device) -> None:
        self.columns = {
            name: torch.zeros(rows, dtype=dtype, device=device)
            for name, dtype in COLUMN_DTYPES.items()
        }
        self.block_tables = torch.zeros(rows, width, dtype=torch.int32, device=device)

    def load(self, columns: dict[str, list], tables: list[list[int]]) -> None:
        """Copy one step's padded inputs in (asynchronously: no wait on the device)."""
        for name, values in columns.items():
            host = torch.tensor(values, dtype=COLUMN_DTYPES[name])
            self.columns[name][: len(values)].copy_(host, non_blocking=True)
        host_tables = torch.tensor(tables, dtype=torch.int32)
        self.block_tables[: len(tables)].copy_(host_tables, non_blocking=True)

    def view(self, bucket: int) -> dict[str, torch.Tensor]:
        return {name: t[:bucket] for name, t in self.columns.items()}

    def sampling_batch(self, bucket: int) -> SamplingBatch:
        """The in-graph sampler's settings: no penalties (those rows sample outside)."""
        return SamplingBatch.without_penalties(self.view(bucket))


@dataclass
class _Captured:
    """One bucket's graph and the output tensors its replays write."""

    graph: torch.cuda.CUDAGraph
    logits: torch.Tensor
    tokens: torch.Tensor


class GraphedDecoder:
    """Decode steps over static buffers; captured into CUDA graphs when `capture` is on.

    With `capture=False` the same padded, static-buffer step runs eagerly on any
    device, which is how the CPU tests check the padding and buffers (capture and
    replay themselves only run on CUDA).
    """

    def __init__(self, model: LlamaForCausalLM, kv_cache: KVCache, capture: bool = True) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.block_size = kv_cache.block_size
        self.capture = capture
        device = kv_cache.data.device
        longest = min(model.config.max_position_embeddings, kv_cache.num_blocks * self.block_size)
        self.width = -(-longest // self.block_size)
        self.sizes = bucket_sizes()
        self.inputs = StaticDecodeInputs(self.sizes[-1], self.width, device)
        self._graphs: dict[int, _Captured] = {}
        self._pool: tuple | None = None
        self.failed = False  # a capture failed: decode stays on the eager path from then on

    @classmethod
    def for_device(cls, model: LlamaForCausalLM, kv_cache: KVCache) -> GraphedDecoder | None:
        """The fast path for this cache's device, or None where it is off (CPU)."""
        return cls(model, kv_cache) if graphs_enabled(kv_cache.data.device) else None

    def supports(self, seqs: list[Sequence]) -> bool:
        return (
            not self.failed
            and len(seqs) <= self.sizes[-1]
            and all(len(s.block_table) <= self.width for s in seqs)
        )

    def decode(self, seqs: list[Sequence]) -> tuple[list[int], list[SampledLogprobs | None]]:
        """Next token of every sequence (and logprobs where asked), like the eager path."""
        bucket = bucket_for(len(seqs), self.sizes)
        assert bucket is not None, "callers check supports() first"
        self.inputs.load(*decode_columns(seqs, self.block_size, bucket, self.width))
        captured = self._graphs.get(bucket) or (self._capture(bucket) if self.capture else None)
        if captured is not None:
            captured.graph.replay()
            logits, tokens = captured.logits, captured.tokens
        else:
            logits, tokens = self._forward(bucket)
        n = len(seqs)
        if any(
            s.params.uses_penalties or s.params.logprobs is not None or s.constraint is not None
            for s in seqs
        ):
            return sample(logits[:n], seqs)
        return tokens[:n].tolist(), [None] * n

    def _forward(self, bucket: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.inputs.view(bucket)
        meta = decode_metadata(c, self.inputs.block_tables[:bucket])
        with torch.inference_mode():
            hidden = self.model(c["input_ids"], c["positions"], meta, self.kv_cache)
            logits = self.model.compute_logits(hidden)
            return logits, kernels.sample(logits, self.inputs.sampling_batch(bucket))

    def _capture(self, bucket: int) -> _Captured | None:
        """Capture this bucket's step, using the inputs already loaded for it.

        The warm-up runs (which compile the Triton kernels outside the capture)
        compute this very step, so their cache writes are the ones it makes anyway.
        A capture that fails turns the fast path off (logged) rather than failing
        the requests: serving goes on eagerly.
        """
        try:
            return self._record(bucket)
        except RuntimeError:
            log.exception("CUDA graph capture failed; decoding without graphs from now on")
            self.failed = True
            return None

    def _record(self, bucket: int) -> _Captured:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward(bucket)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            logits, tokens = self._forward(bucket)
        self._pool = graph.pool()
        self._graphs[bucket] = _Captured(graph, logits, tokens)
        return self._graphs[bucket]
