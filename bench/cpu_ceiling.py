"""What this CPU's integer multiply-adds allow a decode step: the peak rate of the
instructions our int4 kernels multiply with, and the least time the demo model's 30
4-bit layers could then take at 1 to 16 rows.

Each instruction runs in 12 independent chains of register-only multiply-adds (no loads,
nothing else), on every thread at once; the figure is products per second over all of
them: `vpmaddwd` (AVX2, int16 x int16, 16 products an instruction, then `vpaddd`),
`vpdpwssd` (AVX512-VNNI, int16, 32 products), `vpdpbusd` (AVX512-VNNI, uint8 x int8, 64
products: what int8 activations would multiply with). A layer pass needs rows x weights
products; at a rate's peak it takes at least their count over the rate. Beside that, the
time our kernel takes (`neuron_cpu::int4_linear`, the CPU's own choice), the median of
the runs. Prints figures; asserts nothing.

    python -m bench.cpu_ceiling [--runs 7]
"""

from __future__ import annotations

import statistics
import time
from types import ModuleType

import torch
from torch.utils import cpp_extension

from bench.cli import runs_main
from neuron.demo import demo_gguf_path
from neuron.models.loader import load_model
from neuron_kernels.cpu import cpu_kernels

THREADS = 2
ROWS = (1, 4, 16)
ITERATIONS = 20_000_000  # per thread: 12 x this many instructions

_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>

namespace {
constexpr int CHAINS = 12;

// Each returns a value that depends on every chain, so none is optimised away.
int32_t madd_chains(int64_t n) {
  __m256i acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm256_set1_epi32(i);
  __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(5);
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < CHAINS; ++j) acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(a, b));
    asm volatile("" : "+x"(a));
  }
  int32_t total = 0;
  for (int j = 0; j < CHAINS; ++j) total += _mm256_extract_epi32(acc[j], 0);
  return total;
}

// vpdpwssd (int16 pairs) or, with Bytes, vpdpbusd (uint8 x int8 quads).
template <bool Bytes>
__attribute__((target("avx512f,avx512vnni"))) int32_t vnni_chains(int64_t n) {
  __m512i acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i a = Bytes ? _mm512_set1_epi8(3) : _mm512_set1_epi16(3);
  const __m512i b = Bytes ? _mm512_set1_epi8(5) : _mm512_set1_epi16(5);
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < CHAINS; ++j)
      acc[j] = Bytes ? _mm512_dpbusd_epi32(acc[j], a, b) : _mm512_dpwssd_epi32(acc[j], a, b);
    asm volatile("" : "+v"(a));
  }
  int32_t total = 0;
  for (int j = 0; j < CHAINS; ++j) total += _mm512_reduce_add_epi32(acc[j]);
  return total;
}
}  // namespace

// Seconds for `iterations` rounds of 12 chains on each of `threads` threads at once.
double chains_seconds(const std::string& instruction, int64_t iterations, int threads) {
  int32_t sink = 0;
  const double began = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
    if (instruction == "vpmaddwd") sink += madd_chains(iterations);
    else if (instruction == "vpdpwssd") sink += vnni_chains<false>(iterations);
    else sink += vnni_chains<true>(iterations);
  }
  const double seconds = omp_get_wtime() - began;
  static volatile int32_t kept;
  kept = sink;
  return seconds;
}
"""

# instruction → (products per instruction, needs AVX512-VNNI)
INSTRUCTIONS = {"vpmaddwd": (16, False), "vpdpwssd": (32, True), "vpdpbusd": (64, True)}


def _has_avx512_vnni() -> bool:
    caps = torch.cpu.get_capabilities()
    return all(caps.get(f"avx512_{f}") for f in ("f", "vnni"))


def _chains() -> ModuleType:
    return cpp_extension.load_inline(
        "neuron_cpu_ceiling",
        cpp_sources=[_SOURCE],
        functions=["chains_seconds"],
        extra_cflags=["-O2", "-mavx2", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
    )


def run_ceiling_bench(runs: int = 7) -> None:
    if not cpu_kernels():
        raise SystemExit("our CPU kernels cannot run here (they need x86 with AVX2)")
    torch.set_num_threads(THREADS)
    chains = _chains()
    rates = {}
    for name, (products, needs_vnni) in INSTRUCTIONS.items():
        if needs_vnni and not _has_avx512_vnni():
            continue
        seconds = statistics.median(
            chains.chains_seconds(name, ITERATIONS, THREADS) for _ in range(runs)
        )
        rates[name] = THREADS * 12 * ITERATIONS * products / seconds
        print(f"{name:<10} {rates[name] / 1e9:7.1f} G products/s on {THREADS} threads")
    loaded = load_model(str(demo_gguf_path()), "cpu", "float32", quantization="auto")
    layers = [getattr(m, attr) for m, attr, _ in loaded.model.packed_slots()]
    weights = sum(layer.codes.numel() * 2 for layer in layers)
    kernel = torch.ops.neuron_cpu.int4_instruction_set()
    print(f"30 layers, {weights / 1e6:.1f} M weights; least time at each peak, and ours ({kernel})")
    gen = torch.Generator().manual_seed(0)
    for rows in ROWS:
        xs = [torch.randn(rows, layer.codes.shape[1] * 2, generator=gen) for layer in layers]
        times = []
        for _ in range(runs + 1):
            began = time.perf_counter()
            for layer, x in zip(layers, xs, strict=True):
                layer(x)
            times.append(time.perf_counter() - began)
        ours = statistics.median(times[1:])
        floors = "  ".join(f"{n} {1000 * rows * weights / r:6.2f} ms" for n, r in rates.items())
        used = rates["vpdpwssd" if kernel == "avx512_vnni" and rows > 1 else "vpmaddwd"]
        share = rows * weights / ours / used
        print(f"{rows:>2} row(s): {floors}  ours {1000 * ours:6.2f} ms ({share:.0%} of its peak)")


def main() -> None:
    runs_main(__doc__, run_ceiling_bench, 7)


if __name__ == "__main__":
    main()
