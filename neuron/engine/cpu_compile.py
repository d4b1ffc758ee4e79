"""The CPU decode fast path: a single sequence's decode step as one inductor-compiled graph.

A small model's CPU decode step is a few hundred small ops; run one by one from
Python they cost more than the matmuls. Compiled with inductor they fuse into a few
loops per layer around the packed matmul kernels (measured on the demo model: the
engine's batch-1 decode 1.3x faster, `bench/engine.py`; inductor's C++ wrapper was no
faster still and took 3.5x as long to compile). A CPU decode pass only reads the KV
cache inside the layers (it stores the new keys after the last one, see
`AttentionMetadata.store_fresh`), so the graph is pure and compiles whole.

Two graphs serve every batch: one for a single sequence, one for any larger batch (the
batch size a symbol in it, the padding mask always present: tracing at one sequence
would fix the size to 1). Compiling takes one to two minutes each on two cores, so it
runs on its own thread while the eager path serves, and the runner switches batch by
batch as each graph is ready. That thread runs at the lowest priority and compiles its
C++ one file at a time, so that requests served meanwhile keep the cores. Its
artefacts (inductor's FX graph and AOT autograd caches, the built kernels) are kept
under the neuron's `cache_dir` (`use_cache_dir`), so a later start finds them there and
only traces the model again. Where compiling fails (no C++ compiler, an unsupported op)
the eager path simply stays, and so does any step a graph cannot take.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch
import torch._functorch.config
import torch._inductor.config
import torch.nn.functional as F

from neuron.models.attention import AttentionMetadata, KVCache, reads_cache_in_place
from neuron.models.llama import LlamaForCausalLM

log = logging.getLogger(__name__)
WARM_UP_CONTEXT = 6  # keys of the single-sequence warm-up pass, the new one included
LOWEST_PRIORITY = 19  # the compile thread's nice value


def use_cache_dir(cache_dir: Path | None) -> None:
    """Keep inductor's compiled artefacts under `cache_dir/inductor` (None: torch's own
    default, a folder in /tmp that a restart may lose), with its on-disk caches on."""
    if cache_dir is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True


def _yield_the_cores() -> None:
    """Lower the calling thread's priority (Linux keeps a nice value per thread; the
    compiler processes it starts inherit it). Where that is refused, it stays."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
    except (AttributeError, OSError) as exc:
        log.info("the CPU compile keeps its priority: %s", exc)


def _cache_counts() -> tuple[int, int]:
    """Inductor's FX graph cache (hits, misses) in this process so far."""
    counts = torch._dynamo.utils.counters["inductor"]
    return counts["fxgraph_cache_hit"], counts["fxgraph_cache_miss"]


def _compile(model: LlamaForCausalLM, kernel_threads: int) -> Callable[..., torch.Tensor]:
    """`model.hidden_states` to compile, behind a code object of its own, with what a
    step pays around its kernels cut (each measured on the demo model's batch-1 step):

    - torch.compile keeps its graphs per code object and checks a call against each
      graph's guards in turn, so each graph (and each model) gets one; the guards on the
      model's own modules and weights are skipped (the "unsafe" filter: a loaded model
      never changes). Together: guard checks 1.2 → 0.2 ms a step.
    - no size and alignment asserts in the graph's wrapper (its inputs are ours): 7%.
    - `kernel_threads` for inductor's own kernels (-1: all): at one sequence their
      vectors are too short to split, and one thread each was 5% faster (at 16 rows no
      different); our operators in the graph keep their threads.
    """

    def hidden_states(
        input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, kv: KVCache
    ) -> torch.Tensor:
        return model.hidden_states(input_ids, positions, meta, kv)

    hidden_states.__code__ = hidden_states.__code__.replace()  # a copy: its own graph cache
    return torch.compile(
        hidden_states,
        fullgraph=True,
        dynamic=True,
        options={
            "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe,
            "size_asserts": False,
            "alignment_asserts": False,
            "cpp.threads": kernel_threads,
            "compile_threads": 1,  # one compiler process at a time, beside the engine
        },
    )


class CompiledDecoder:
    """`LlamaForCausalLM.forward` of a CPU decode pass, its layers through the compiled
    graphs."""

    def __init__(self, model: LlamaForCausalLM, kv_cache: KVCache) -> None:
        self.kv_cache = kv_cache
        self._one_sequence = _compile(model, kernel_threads=1)
        self._batches = _compile(model, kernel_threads=-1)
        self.ready = threading.Event()  # the single-sequence graph serves
        self.batched = threading.Event()  # and the graph for larger batches too
        self.failed: str | None = None
        self.settled = threading.Event()  # compiling is over: both graphs serve, or failed
        self.steps = 0  # decode passes the graphs served
        # Graphs inductor found in its on-disk cache, and those it compiled (a warm start:
        # all found, none compiled).
        self.cache_hits = self.cache_misses = 0

    @property
    def state(self) -> str:
        """One of "compiling" (eager, or the single-sequence graph alone while the
        batches' one compiles), "active" (both graphs serve) or "failed"."""
        if self.failed is not None:
            return "failed"
        return "active" if self.batched.is_set() else "compiling"

    def start(self) -> None:
        """Compile on a background thread; `ready`, then `batched`, is set as each graph
        can serve."""
        threading.Thread(target=self._warm_up, name="neuron-cpu-compile", daemon=True).start()

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata
    ) -> torch.Tensor | None:
        """Hidden states of a decode pass, its keys stored, or None when no graph can take
        it (not compiled yet, or a shape it was not compiled for)."""
        batch = input_ids.shape[0]
        if not (self.batched if batch > 1 else self.ready).is_set():
            return None
        self._graph_inputs(meta)
        graph = self._batches if batch > 1 else self._one_sequence
        try:
            with torch.no_grad(), torch.compiler.set_stance("fail_on_recompile"):
                hidden = graph(input_ids, positions, meta, self.kv_cache)
        except Exception:  # any failure of the graph means: run eagerly
            log.warning("compiled decode step failed; running eagerly", exc_info=True)
            meta.fresh_kv.clear()
            return None
        meta.store_fresh(self.kv_cache)
        self.steps += 1
        return hidden

    def _graph_inputs(self, meta: AttentionMetadata) -> None:
        """torch's attention takes the cached keys gathered host-side, and a batch's graph
        always a mask; ours reads them from the cache itself, through block tables of at
        least two columns (the graphs were traced with two: a width of 1 is fixed when
        traced, so it is padded with a column that is never read)."""
        if not reads_cache_in_place(self.kv_cache.data):
            batch = meta.slot_mapping.shape[0]
            meta.decode_gather(self.kv_cache.block_size, always_mask=batch > 1)
        elif meta.block_tables is not None and meta.block_tables.shape[1] < 2:
            meta.block_tables = F.pad(meta.block_tables, (0, 2 - meta.block_tables.shape[1]))

    def _warm_up(self) -> None:
        _yield_the_cores()
        hits, misses = _cache_counts()
        try:
            self._compile_both()
        finally:
            now_hits, now_misses = _cache_counts()
            self.cache_hits, self.cache_misses = now_hits - hits, now_misses - misses
            log.info(
                "CPU decode compile over: %d graphs from the cache, %d compiled",
                self.cache_hits,
                self.cache_misses,
            )
            self.settled.set()

    def _compile_both(self) -> None:
        # Sizes that happen to be equal (a context length and a cache dimension) stay
        # apart, or the graph would only serve that coincidence. torch's settings are per
        # thread: this is the one that compiles.
        torch.fx.experimental._config.use_duck_shape = False
        passes = (
            (self._one_sequence, (WARM_UP_CONTEXT,), self.ready, "one sequence"),
            (self._batches, self._batch_contexts(), self.batched, "batches"),
        )
        for graph, contexts, done, name in passes:
            try:
                with torch.no_grad():
                    graph(*self._sample_pass(contexts), self.kv_cache)
            except Exception as exc:  # no compiler, unsupported op: stay eager
                self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("CPU decode stays eager: compiling it failed (%s)", self.failed)
                return
            log.info("CPU decode step compiled for %s", name)
            done.set()

    def _batch_contexts(self) -> tuple[int, ...]:
        """Context lengths of the batch warm-up pass: its batch size and key counts equal no
        size of the cache, or tracing would tie them together (a batch of 2 beside the
        cache's key/value axis of 2) and the graph would serve that batch size only."""
        taken = set(self.kv_cache.data.shape)
        batch = next(n for n in range(2, 1 << 16) if n not in taken)
        taken.add(batch)
        longest = next(n for n in range(batch + 1, 1 << 16) if not {n - 1, n} & taken)
        return tuple(range(longest, longest - batch, -1))

    def _sample_pass(
        self, contexts: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata]:
        """A decode pass over the first blocks, one row per context length: it only reads
        the cache, and its outputs are dropped, so serving may write the cache meanwhile."""
        lens = torch.tensor(contexts, dtype=torch.int32)
        positions = lens.long() - 1  # also their slots: every row's blocks are 0, 1, ...
        width = max(2, -(-max(contexts) // self.kv_cache.block_size))  # see _graph_inputs
        meta = AttentionMetadata(
            is_prefill=False,
            slot_mapping=positions,
            block_tables=torch.arange(width, dtype=torch.int32).repeat(len(contexts), 1),
            context_lens=lens,
        )
        self._graph_inputs(meta)
        return torch.zeros(len(contexts), dtype=torch.int64), positions, meta
