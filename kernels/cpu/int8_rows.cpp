// logits = (x @ W.T) * scale for a vocabulary matrix W held as int8 [V, K] with one fp32
// scale per row, on AVX2 CPUs: the ranking pass of the output head for a few rows.
//
// Each row of x is quantised to int16 with one scale (15 bits against its largest
// value, finer than bf16's 8), so a whole row's products sum in int32 (`vpmaddwd`, 16 a
// instruction), flushed to fp32 every 64 runs of 32 before they could overflow.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "avx2.h"

namespace {

constexpr int64_t RUN = 32;
constexpr int64_t FLUSH_RUNS = 64;  // 64 * 4 products of at most 127 * 32767 < 2^31
constexpr int ROWS = 4;
constexpr int64_t VOCAB_TILE = 64;  // vocabulary rows per task

template <int R>
void vocabulary_row(const int16_t* x, int64_t K, const int8_t* w, float* acc_out) {
  __m256 total[R];
  __m256i acc[R];
  for (int r = 0; r < R; ++r) {
    total[r] = _mm256_setzero_ps();
    acc[r] = _mm256_setzero_si256();
  }
  const int64_t runs = K / RUN;
  for (int64_t g = 0; g < runs; ++g) {
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * RUN)));
    const __m256i w1 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * RUN + 16)));
    for (int r = 0; r < R; ++r) {
      const auto* xr = reinterpret_cast<const __m256i*>(x + r * K + g * RUN);
      acc[r] = _mm256_add_epi32(acc[r], _mm256_add_epi32(_mm256_madd_epi16(w0, _mm256_loadu_si256(xr)),
                                                         _mm256_madd_epi16(w1, _mm256_loadu_si256(xr + 1))));
    }
    if ((g + 1) % FLUSH_RUNS == 0 || g + 1 == runs) {
      for (int r = 0; r < R; ++r) {
        total[r] = _mm256_add_ps(total[r], _mm256_cvtepi32_ps(acc[r]));
        acc[r] = _mm256_setzero_si256();
      }
    }
  }
  for (int r = 0; r < R; ++r) acc_out[r] = neuron_cpu::horizontal_sum(total[r]);
}

void vocabulary_rows(int count, const int16_t* x, int64_t K, const int8_t* w, float* sums) {
  switch (count) {
    case 1: return vocabulary_row<1>(x, K, w, sums);
    case 2: return vocabulary_row<2>(x, K, w, sums);
    case 3: return vocabulary_row<3>(x, K, w, sums);
    case 4: return vocabulary_row<4>(x, K, w, sums);
  }
}

at::Tensor int8_rows_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scale) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat, "x must be fp32 [M, K]");
  TORCH_CHECK(weight.scalar_type() == at::kChar && weight.is_contiguous() && weight.dim() == 2,
              "weight must be int8 [V, K]");
  TORCH_CHECK(scale.scalar_type() == at::kFloat, "scale must be fp32");
  const int64_t M = x.size(0), K = x.size(1), V = weight.size(0);
  TORCH_CHECK(K % RUN == 0 && weight.size(1) == K && scale.numel() == V, "shapes do not match");
  const at::Tensor rows = x.contiguous(), scales = scale.contiguous();
  std::vector<int16_t> codes(M * K);
  std::vector<float> row_scale(M);
  const float* xp = rows.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    float largest = 0.f;
    for (int64_t k = 0; k < K; ++k) largest = std::max(largest, std::abs(xp[m * K + k]));
    const float s = largest > 0.f ? largest / 32767.f : 1.f, inverse = 1.f / s;
    for (int64_t k = 0; k < K; ++k)
      codes[m * K + k] = static_cast<int16_t>(std::nearbyint(xp[m * K + k] * inverse));
    row_scale[m] = s;
  }
  at::Tensor y = at::empty({M, V}, x.options());
  const int8_t* w = weight.data_ptr<int8_t>();
  const float* sv = scales.data_ptr<float>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, (V + VOCAB_TILE - 1) / VOCAB_TILE, 1, [&](int64_t begin, int64_t end) {
    float sums[ROWS];
    for (int64_t v = begin * VOCAB_TILE; v < std::min(V, end * VOCAB_TILE); ++v) {
      for (int64_t m0 = 0; m0 < M; m0 += ROWS) {
        const int count = static_cast<int>(std::min<int64_t>(ROWS, M - m0));
        vocabulary_rows(count, codes.data() + m0 * K, K, w + v * K, sums);
        for (int r = 0; r < count; ++r) out[(m0 + r) * V + v] = sums[r] * row_scale[m0 + r] * sv[v];
      }
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(neuron_cpu, m) {
  m.def("int8_rows_linear(Tensor x, Tensor weight, Tensor scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(neuron_cpu, CPU, m) { m.impl("int8_rows_linear", int8_rows_linear); }
