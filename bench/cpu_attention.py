"""A CPU decode step's attention (`neuron_cpu::decode_attention`) over the demo model's
30 layers of KV cache: how its time grows with sequences and keys, for fp16 and fp32
caches, with block tables laid out two ways: "in order" (one sequence's blocks one after
another, as a prompt allocates them) and "interleaved" (the blocks of sequences that
decode together alternate, as each takes one block every 16 tokens). Each figure is one
step's 30 calls, the median of the runs, the layouts alternating run by run. Prints
figures; asserts nothing.

    python -m bench.cpu_attention [--runs 9]
"""

from __future__ import annotations

import statistics
import time

import torch

from bench.cli import runs_main
from neuron_kernels.cpu import cpu_kernels

THREADS = 2
LAYERS, HEADS, KV_HEADS, DIM, BLOCK = 30, 9, 3, 64, 16  # SmolLM2-135M's shape
SHAPES = ((1, 64), (1, 2000), (1, 8000), (16, 48), (16, 500), (16, 2000))  # sequences x keys


def _tables(sequences: int, width: int, layout: str) -> torch.Tensor:
    blocks = torch.arange(sequences * width, dtype=torch.int32)
    if layout == "in order":
        return blocks.view(sequences, width)
    return blocks.view(width, sequences).t().contiguous()


def _step_ms(
    caches: list[tuple[torch.Tensor, torch.Tensor]], tables: torch.Tensor, keys: int
) -> float:
    sequences = tables.shape[0]
    gen = torch.Generator().manual_seed(sequences)
    q = torch.randn(sequences, HEADS, DIM, generator=gen)
    k, v = (torch.randn(sequences, KV_HEADS, DIM, generator=gen) for _ in range(2))
    lens = torch.full((sequences,), keys, dtype=torch.int32)
    began = time.perf_counter()
    for k_cache, v_cache in caches:
        torch.ops.neuron_cpu.decode_attention(q, k, v, k_cache, v_cache, tables, lens, DIM**-0.5)
    return 1000 * (time.perf_counter() - began)


def run_cpu_attention_bench(runs: int = 9) -> None:
    if not cpu_kernels():
        raise SystemExit("our CPU kernels cannot run here (they need x86 with AVX2)")
    torch.set_num_threads(THREADS)
    layouts = ("in order", "interleaved")
    print(f"{'cache':<7}{'sequences x keys':>18}" + "".join(f"{n + ', ms':>17}" for n in layouts))
    for dtype in (torch.float16, torch.float32):
        for sequences, keys in SHAPES:
            width = -(-keys // BLOCK)
            shape = (sequences * width, BLOCK, KV_HEADS, DIM)
            caches = [
                (torch.randn(shape).to(dtype), torch.randn(shape).to(dtype)) for _ in range(LAYERS)
            ]
            tables = {name: _tables(sequences, width, name) for name in layouts}
            times: dict[str, list[float]] = {name: [] for name in layouts}
            for _ in range(runs):
                for name in layouts:
                    times[name].append(_step_ms(caches, tables[name], keys))
            cells = "".join(f"{statistics.median(times[n]):>17.2f}" for n in layouts)
            name = str(dtype).removeprefix("torch.")
            print(f"{name:<7}{f'{sequences} x {keys}':>18}{cells}", flush=True)
            del caches


def main() -> None:
    runs_main(__doc__, run_cpu_attention_bench, 9)


if __name__ == "__main__":
    main()
