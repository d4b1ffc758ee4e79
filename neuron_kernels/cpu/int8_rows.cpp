// logits = (x @ W.T) * scale for a vocabulary matrix W held as int8 [V, K] with one fp32
// scale per row, on AVX2 CPUs: the ranking pass of the output head for a few rows; and
// the exact logits of the rows each ranking chose, from both int8 parts of W.
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
  neuron_cpu::LineVector<int16_t> codes(M * K);
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

// x · row for a row of int8 widened in registers; K a multiple of 8.
float widened_dot(const float* x, const int8_t* row, int64_t K) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k += 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)), _mm256_loadu_ps(x + k), acc);
  }
  return neuron_cpu::horizontal_sum(acc);
}

// out[n, r] = scale[t] * x[n] · (high[t] + low[t] / 254) for t = chosen[n, r]: parts holds
// the high rows [V, K] then the low ones (`neuron/models/lm_head.py`). In place of
// gathering the chosen rows, widening them to fp32 and one batched matrix-vector product
// (measured at 16 rows of 128 chosen each: 1.8 ms, this 0.35 ms).
at::Tensor int8_rows_refine(const at::Tensor& x, const at::Tensor& parts, const at::Tensor& scale,
                            const at::Tensor& chosen) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat, "x must be fp32 [N, K]");
  TORCH_CHECK(parts.dim() == 2 && parts.scalar_type() == at::kChar && parts.is_contiguous(),
              "parts must be int8 [2V, K]");
  TORCH_CHECK(chosen.dim() == 2 && chosen.scalar_type() == at::kLong && chosen.size(0) == x.size(0),
              "chosen must be int64 [N, R]");
  const int64_t N = x.size(0), K = x.size(1), V = parts.size(0) / 2, R = chosen.size(1);
  TORCH_CHECK(K % 8 == 0 && parts.size(1) == K && parts.size(0) == 2 * V && scale.numel() == V &&
                  scale.scalar_type() == at::kFloat, "shapes do not match");
  const at::Tensor rows = x.contiguous(), picks = chosen.contiguous(), sc = scale.contiguous();
  const int64_t* pick = picks.data_ptr<int64_t>();
  TORCH_CHECK(std::all_of(pick, pick + N * R, [&](int64_t t) { return t >= 0 && t < V; }),
              "chosen names a row the vocabulary does not have");
  at::Tensor out = at::empty({N, R}, x.options());
  const float* xs = rows.data_ptr<float>();
  const int8_t* w = parts.data_ptr<int8_t>();
  const float* sv = sc.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, N * R, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = xs + (i / R) * K;
      const int64_t t = pick[i];
      if (i + 1 < end) {  // the next chosen rows lie anywhere in the matrix: fetched ahead
        neuron_cpu::prefetch(w + pick[i + 1] * K, K);
        neuron_cpu::prefetch(w + (V + pick[i + 1]) * K, K);
      }
      const float high = widened_dot(row, w + t * K, K), low = widened_dot(row, w + (V + t) * K, K);
      o[i] = sv[t] * (high + low / 254.f);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(neuron_cpu, m) {
  m.def("int8_rows_linear(Tensor x, Tensor weight, Tensor scale) -> Tensor");
  m.def("int8_rows_refine(Tensor x, Tensor parts, Tensor scale, Tensor chosen) -> Tensor");
}

TORCH_LIBRARY_IMPL(neuron_cpu, CPU, m) {
  m.impl("int8_rows_linear", int8_rows_linear);
  m.impl("int8_rows_refine", int8_rows_refine);
}
