"""The CPU decode fast path: a single sequence's decode step as one inductor-compiled graph.

A small model's CPU decode step is a few hundred small ops; run one by one from
Python they cost more than the matmuls. Compiled with inductor's C++ wrapper they
fuse into a few loops per layer around the packed matmul kernels, with no Python
between them (measured on the demo model: the engine's batch-1 decode 1.3x faster,
`bench/engine.py`). A CPU decode pass only reads the KV cache inside the layers (it
stores the new keys after the last one, see `AttentionMetadata.store_fresh`), so
the graph is pure and compiles whole.

Only batch 1 is compiled: the graph for larger batches specialises to the batch size
it was traced at, and a batch's step is dominated by the packed matmuls anyway, so
batches stay eager. Compiling takes one to two minutes on two cores (inductor caches
it on disk for later starts), so it runs on its own thread while the eager path
serves, and the runner switches once it is ready. Where compiling fails (no C++
compiler, an unsupported op) the eager path simply stays, and so does any step the
graph cannot take.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import torch

from neuron.models.attention import AttentionMetadata, KVCache
from neuron.models.llama import LlamaForCausalLM

log = logging.getLogger(__name__)
WARM_UP_CONTEXT = 6  # keys of the warm-up pass, the new one included


class CompiledDecoder:
    """`LlamaForCausalLM.forward` of a one-sequence CPU decode pass, its layers through
    the compiled graph."""

    def __init__(self, model: LlamaForCausalLM, kv_cache: KVCache) -> None:
        import torch._inductor.config as inductor

        inductor.cpp_wrapper = True  # kernels called from C++, not from Python
        # Sizes that happen to be equal (a context length and a cache dimension) stay
        # apart, or the graph would only serve that coincidence.
        torch.fx.experimental._config.use_duck_shape = False
        self.kv_cache = kv_cache
        self._compiled: Callable[..., torch.Tensor] = torch.compile(
            model.hidden_states, fullgraph=True, dynamic=True
        )
        self.ready = threading.Event()
        self.failed: str | None = None
        self.steps = 0  # decode passes the graph served

    def start(self) -> None:
        """Compile on a background thread; `ready` is set when the graph can serve."""
        threading.Thread(target=self._warm_up, name="neuron-cpu-compile", daemon=True).start()

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata
    ) -> torch.Tensor | None:
        """Hidden states of a decode pass, its keys stored, or None when the graph cannot
        take it (not ready, more than one sequence, or a shape it was not compiled for)."""
        if not self.ready.is_set() or input_ids.shape[0] != 1:
            return None
        meta.decode_gather(self.kv_cache.block_size)  # host-side: the graph takes its result
        try:
            with torch.no_grad(), torch.compiler.set_stance("fail_on_recompile"):
                hidden = self._compiled(input_ids, positions, meta, self.kv_cache)
        except Exception:  # any failure of the graph means: run eagerly
            log.warning("compiled decode step failed; running eagerly", exc_info=True)
            meta.fresh_kv.clear()
            return None
        meta.store_fresh(self.kv_cache)
        self.steps += 1
        return hidden

    def _warm_up(self) -> None:
        try:
            with torch.no_grad():
                self._compiled(*self._sample_pass(), self.kv_cache)
        except Exception as exc:  # no compiler, unsupported op: stay eager
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.warning("CPU decode stays eager: compiling it failed (%s)", self.failed)
            return
        log.info("CPU decode step compiled")
        self.ready.set()

    def _sample_pass(self) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata]:
        """A decode pass over the first blocks: it only reads the cache, and its outputs are
        dropped, so serving may write the cache meanwhile."""
        token = torch.zeros(1, dtype=torch.int64)
        position = token + WARM_UP_CONTEXT - 1  # also its slot: the blocks are 0, 1, ...
        width = -(-WARM_UP_CONTEXT // self.kv_cache.block_size)
        meta = AttentionMetadata(
            is_prefill=False,
            slot_mapping=position,
            block_tables=torch.arange(width, dtype=torch.int32)[None, :],
            context_lens=torch.full((1,), WARM_UP_CONTEXT, dtype=torch.int32),
        )
        meta.decode_gather(self.kv_cache.block_size)
        return token, position, meta
