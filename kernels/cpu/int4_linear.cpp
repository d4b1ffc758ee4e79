// y = x @ W.T for W in 4-bit codes with one fp16 scale and offset per run of 32 inputs
// (w = code * scale + offset, GGUF's Q4 form), on AVX2 CPUs; and W itself in fp32, for
// passes with many rows (a prompt), where a dense matmul on it is the faster.
//
// The activations are quantised per run of 32 to int16 (error ~1.5e-5 of the run's
// largest value, far below bf16's 4e-3), so a code times an activation is an integer
// product: `vpmaddwd` forms 16 of them per instruction with exact int32 sums, and each run
// then needs one conversion and one multiply-add with the run's two scales. The offset
// term, offset * sum(x), uses the exact fp32 sums of each run of x.
//
// Layouts: codes uint8 [N, K / 2], per run of 32 the 16 bytes hold code j in the low and
// code j + 16 in the high nibble of byte j (GGUF's own); scale and offset fp16 [N, K / 32].
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include "avx2.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using neuron_cpu::horizontal_sum;
using neuron_cpu::widen_halves;

constexpr int64_t RUN = 32;
constexpr int ROWS = 8;          // activation rows per register block
constexpr int64_t OUTPUTS = 16;  // output channels per tile: their codes stay in L1

// The activations: int16 codes in [runs, rows, 32] (a run's rows side by side, so a
// register block reads them at fixed offsets), their scales [runs, rows], fp32 sums
// [rows, runs].
struct Activations {
  std::vector<int16_t> codes;
  std::vector<float> scales, sums;
  int64_t rows, runs;

  Activations(const float* x, int64_t rows, int64_t runs)
      : codes(rows * runs * RUN), scales(rows * runs), sums(rows * runs), rows(rows), runs(runs) {
    for (int64_t m = 0; m < rows; ++m) {
      for (int64_t g = 0; g < runs; ++g) {
        const float* v = x + (m * runs + g) * RUN;
        float largest = 0.f, sum = 0.f;
        for (int j = 0; j < RUN; ++j) {
          largest = std::max(largest, std::abs(v[j]));
          sum += v[j];
        }
        const float scale = largest > 0.f ? largest / 32767.f : 1.f, inverse = 1.f / scale;
        int16_t* out = codes.data() + (g * rows + m) * RUN;
        for (int j = 0; j < RUN; ++j) out[j] = static_cast<int16_t>(std::nearbyint(v[j] * inverse));
        scales[g * rows + m] = scale;
        sums[m * runs + g] = sum;
      }
    }
  }
};

// One output channel for R activation rows from m0: y[r * ldy] for r < R.
template <int R>
void channel(const Activations& x, int64_t m0, const uint8_t* codes, const float* scale,
             const float* offset, float* y, int64_t ldy) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m128i nibble = _mm_set1_epi8(0x0F);
  for (int64_t g = 0; g < x.runs; ++g) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + g * 16));
    const __m256i low = _mm256_cvtepu8_epi16(_mm_and_si128(packed, nibble));
    const __m256i high = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
    const __m256 s = _mm256_broadcast_ss(scale + g);
    const int16_t* xg = x.codes.data() + (g * x.rows + m0) * RUN;
    const float* xs = x.scales.data() + g * x.rows + m0;
    for (int r = 0; r < R; ++r) {
      const auto* xr = reinterpret_cast<const __m256i*>(xg + r * RUN);
      const __m256i sums = _mm256_add_epi32(_mm256_madd_epi16(low, _mm256_loadu_si256(xr)),
                                            _mm256_madd_epi16(high, _mm256_loadu_si256(xr + 1)));
      const __m256 both = _mm256_mul_ps(s, _mm256_broadcast_ss(xs + r));
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), both, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float* sums = x.sums.data() + (m0 + r) * x.runs;
    __m256 o = acc[r];
    int64_t g = 0;
    for (; g + 8 <= x.runs; g += 8)
      o = _mm256_fmadd_ps(_mm256_loadu_ps(offset + g), _mm256_loadu_ps(sums + g), o);
    float tail = 0.f;
    for (; g < x.runs; ++g) tail += offset[g] * sums[g];
    y[r * ldy] = horizontal_sum(o) + tail;
  }
}

void channel_rows(const Activations& x, int64_t m0, int64_t count, const uint8_t* codes,
                  const float* scale, const float* offset, float* y, int64_t ldy) {
  switch (count) {
#define ROWS_CASE(k) \
  case k:            \
    return channel<k>(x, m0, codes, scale, offset, y, ldy);
    ROWS_CASE(1) ROWS_CASE(2) ROWS_CASE(3) ROWS_CASE(4)
    ROWS_CASE(5) ROWS_CASE(6) ROWS_CASE(7) ROWS_CASE(8)
#undef ROWS_CASE
  }
}

at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale,
                       const at::Tensor& offset) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat, "x must be fp32 [M, K]");
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous(), "codes must be uint8");
  TORCH_CHECK(scale.scalar_type() == at::kHalf && offset.scalar_type() == at::kHalf,
              "scale and offset must be fp16");
  const int64_t M = x.size(0), K = x.size(1), N = codes.size(0), G = K / RUN;
  TORCH_CHECK(K % RUN == 0 && codes.size(1) * 2 == K && scale.numel() == N * G &&
                  offset.numel() == N * G, "shapes do not match");
  const at::Tensor rows = x.contiguous();
  const at::Tensor scale_c = scale.contiguous(), offset_c = offset.contiguous();
  const Activations acts(rows.data_ptr<float>(), M, G);
  at::Tensor y = at::empty({M, N}, x.options());
  const uint8_t* code_data = codes.data_ptr<uint8_t>();
  const at::Half* scale_data = scale_c.data_ptr<at::Half>();
  const at::Half* offset_data = offset_c.data_ptr<at::Half>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, (N + OUTPUTS - 1) / OUTPUTS, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> widened(2 * OUTPUTS * G);  // the tile's scales and offsets in fp32
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t n0 = tile * OUTPUTS, n1 = std::min(N, n0 + OUTPUTS);
      widen_halves(scale_data + n0 * G, widened.data(), (n1 - n0) * G);
      widen_halves(offset_data + n0 * G, widened.data() + OUTPUTS * G, (n1 - n0) * G);
      for (int64_t m0 = 0; m0 < M; m0 += ROWS) {
        const int64_t count = std::min<int64_t>(ROWS, M - m0);
        for (int64_t n = n0; n < n1; ++n) {
          const float* s = widened.data() + (n - n0) * G;
          channel_rows(acts, m0, count, code_data + n * (K / 2), s, s + OUTPUTS * G,
                       out + m0 * N + n, N);
        }
      }
    }
  });
  return y;
}

at::Tensor int4_dequantize(const at::Tensor& codes, const at::Tensor& scale,
                           const at::Tensor& offset) {
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous() && codes.dim() == 2,
              "codes must be uint8 [N, K / 2]");
  const int64_t N = codes.size(0), K = codes.size(1) * 2, G = K / RUN;
  TORCH_CHECK(K % RUN == 0 && scale.numel() == N * G && offset.numel() == N * G,
              "shapes do not match");
  const at::Tensor scale_c = scale.contiguous(), offset_c = offset.contiguous();
  at::Tensor w = at::empty({N, K}, codes.options().dtype(at::kFloat));
  const uint8_t* code_data = codes.data_ptr<uint8_t>();
  const at::Half* scale_data = scale_c.data_ptr<at::Half>();
  const at::Half* offset_data = offset_c.data_ptr<at::Half>();
  float* out = w.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> widened(2 * G);
    for (int64_t n = begin; n < end; ++n) {
      widen_halves(scale_data + n * G, widened.data(), G);
      widen_halves(offset_data + n * G, widened.data() + G, G);
      for (int64_t g = 0; g < G; ++g) {
        const __m256 s = _mm256_set1_ps(widened[g]), o = _mm256_set1_ps(widened[G + g]);
        const __m128i packed =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(code_data + n * (K / 2) + g * 16));
        const __m128i parts[2] = {packed, _mm_srli_epi16(packed, 4)};
        float* dst = out + n * K + g * RUN;
        for (int half = 0; half < 2; ++half) {  // codes 0..15, then 16..31
          const __m128i nibbles = _mm_and_si128(parts[half], _mm_set1_epi8(0x0F));
          for (int eighth = 0; eighth < 2; ++eighth) {
            const __m128i bytes = eighth ? _mm_srli_si128(nibbles, 8) : nibbles;
            const __m256 code = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
            _mm256_storeu_ps(dst + half * 16 + eighth * 8, _mm256_fmadd_ps(code, s, o));
          }
        }
      }
    }
  });
  return w;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(neuron_cpu, m) {
  m.def("int4_linear(Tensor x, Tensor codes, Tensor scale, Tensor offset) -> Tensor");
  m.def("int4_dequantize(Tensor codes, Tensor scale, Tensor offset) -> Tensor");
}

TORCH_LIBRARY_IMPL(neuron_cpu, CPU, m) {
  m.impl("int4_linear", int4_linear);
  m.impl("int4_dequantize", int4_dequantize);
}
