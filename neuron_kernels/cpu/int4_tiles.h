// The driver every int4 kernel shares (int4_linear.cpp, int4_linear_avx512.cpp): output
// channels in tiles whose codes stay in L1, split between threads, their fp16 scales and
// offsets widened once per tile; the instruction set's own code is a `Kernel` with
//   Kernel::Activations(x, rows, runs)   the rows quantised in the layout it reads;
//   Kernel::ROWS                         activation rows per register block;
//   Kernel::channel<R>(acts, m0, codes, scale, offset, y, ldy)
//                                        one output channel for R <= ROWS rows from m0.
// Layouts as in int4_linear.cpp.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "avx2.h"

namespace neuron_cpu {

constexpr int64_t INT4_RUN = 32;       // inputs per scale and offset
constexpr int64_t INT4_OUTPUTS = 16;   // output channels per tile: their codes stay in L1
// Codes are fetched this many bytes ahead of use: a decode pass streams every layer's codes
// from memory once, and the hardware prefetcher alone restarts too late on each small
// matrix (measured on the demo model: batch-1 layers 1.15x faster, `bench/cpu_kernels.py`).
constexpr int64_t INT4_AHEAD = 1536;

// fn(std::integral_constant<int, count>) for a count in 1 .. Most known only at run time.
template <int Most, class Fn>
void with_rows(int64_t count, const Fn& fn) {
  if constexpr (Most > 0) {
    if (count == Most) return fn(std::integral_constant<int, Most>{});
    with_rows<Most - 1>(count, fn);
  }
}

template <class Kernel>
at::Tensor int4_tiles(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale,
                      const at::Tensor& offset) {
  const int64_t M = x.size(0), K = x.size(1), N = codes.size(0), G = K / INT4_RUN;
  const at::Tensor rows = x.contiguous();
  const at::Tensor scale_c = scale.contiguous(), offset_c = offset.contiguous();
  const typename Kernel::Activations acts(rows.data_ptr<float>(), M, G);
  at::Tensor y = at::empty({M, N}, x.options());
  const uint8_t* code_data = codes.data_ptr<uint8_t>();
  const at::Half* scale_data = scale_c.data_ptr<at::Half>();
  const at::Half* offset_data = offset_c.data_ptr<at::Half>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, (N + INT4_OUTPUTS - 1) / INT4_OUTPUTS, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> widened(2 * INT4_OUTPUTS * G);  // the tile's scales and offsets in fp32
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t n0 = tile * INT4_OUTPUTS, n1 = std::min(N, n0 + INT4_OUTPUTS);
      widen_halves(scale_data + n0 * G, widened.data(), (n1 - n0) * G);
      widen_halves(offset_data + n0 * G, widened.data() + INT4_OUTPUTS * G, (n1 - n0) * G);
      if (tile + 1 < end) {  // the next tile's scales, while this one computes
        const int64_t count = (std::min(N, n1 + INT4_OUTPUTS) - n1) * G * sizeof(at::Half);
        prefetch(scale_data + n1 * G, count);
        prefetch(offset_data + n1 * G, count);
      }
      for (int64_t m0 = 0; m0 < M; m0 += Kernel::ROWS) {
        with_rows<Kernel::ROWS>(std::min<int64_t>(Kernel::ROWS, M - m0), [&](auto rows) {
          for (int64_t n = n0; n < n1; ++n) {
            const float* s = widened.data() + (n - n0) * G;
            Kernel::template channel<decltype(rows)::value>(
                acts, m0, code_data + n * (K / 2), s, s + INT4_OUTPUTS * G, out + m0 * N + n, N);
          }
        });
      }
    }
  });
  return y;
}

// The AVX512-VNNI kernel (int4_linear_avx512.cpp): used where the CPU has it, unless
// NEURON_CPU_AVX512=0 at start or `int4_use_avx512(false)`; int4_linear.cpp's AVX2 one
// otherwise.
bool int4_avx512_supported();
bool int4_avx512_usable();
void int4_use_avx512(bool on);
at::Tensor int4_linear_avx512(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale,
                              const at::Tensor& offset);

}  // namespace neuron_cpu
