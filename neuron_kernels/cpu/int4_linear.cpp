// y = x @ W.T for W in 4-bit codes with one fp16 scale and offset per run of 32 inputs
// (w = code * scale + offset, GGUF's Q4 form), on AVX2 CPUs; and W itself in fp32, for
// passes with many rows (a prompt), where a dense matmul on it is the faster.
//
// The activations are quantised per run of 32 to int16 (error ~1.5e-5 of the run's
// largest value, far below bf16's 4e-3), so a code times an activation is an integer
// product: `vpmaddwd` forms 16 of them per instruction with exact int32 sums, and each pair
// of runs then needs one conversion and one multiply-add with the runs' scales. The offset
// term, offset * sum(x), uses the exact fp32 sums of each run of x.
//
// Layouts: codes uint8 [N, K / 2], per run of 32 the 16 bytes hold code j in the low and
// code j + 16 in the high nibble of byte j (GGUF's own); scale and offset fp16 [N, K / 32].
//
// Where the CPU has AVX512-VNNI, int4_linear_avx512.cpp's kernel does the same products
// with `vpdpwssd`, each 32-bit lane one run; this file's is the AVX2 one, and the op's
// entry point.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "avx2.h"
#include "int4_tiles.h"

namespace {

using neuron_cpu::horizontal_max;
using neuron_cpu::horizontal_sum;
using neuron_cpu::widen_halves;

constexpr int64_t RUN = neuron_cpu::INT4_RUN;
constexpr int64_t AHEAD = neuron_cpu::INT4_AHEAD;

// The activations, for the order the codes unpack in: a pair of runs (g, g + 1) is one
// 32-byte load of codes, and `vpunpck{l,h}bw` widens each quarter of both runs at once
// (in-lane, unlike a full-width widening), so per pair and row the 64 int16 activations
// are held as, for each quarter q, x_g[8q .. 8q + 7] then x_{g+1}[8q .. 8q + 7], beside
// the 8 scales [s_g x4, s_{g+1} x4] the same lanes take. Layout [pairs, rows, 64] and
// [pairs, rows, 8]; an odd last run is paired with zeros. The exact fp32 sums per run are
// [rows, runs].
struct RunPairs {
  neuron_cpu::LineVector<int16_t> codes;
  neuron_cpu::LineVector<float> scales, sums;
  int64_t rows, runs, pairs;

  RunPairs(const float* x, int64_t rows, int64_t runs)
      : codes((runs + 1) / 2 * rows * 2 * RUN),
        scales((runs + 1) / 2 * rows * 8),
        sums(rows * runs),
        rows(rows),
        runs(runs),
        pairs((runs + 1) / 2) {
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t g = 0; g < runs; ++g) quantize(x + (m * runs + g) * RUN, m, g);
  }

  void quantize(const float* v, int64_t m, int64_t g) {
    const __m256 magnitude = _mm256_set1_ps(-0.f);
    __m256 largest = _mm256_setzero_ps(), total = _mm256_setzero_ps();
    for (int j = 0; j < RUN; j += 8) {
      const __m256 part = _mm256_loadu_ps(v + j);
      largest = _mm256_max_ps(largest, _mm256_andnot_ps(magnitude, part));
      total = _mm256_add_ps(total, part);
    }
    const float top = horizontal_max(largest);
    const float scale = top > 0.f ? top / 32767.f : 1.f;
    const __m256 inverse = _mm256_set1_ps(1.f / scale);
    const int64_t pair = g / 2, side = g % 2;
    int16_t* out = codes.data() + (pair * rows + m) * 2 * RUN + side * 8;
    for (int q = 0; q < 4; ++q) {  // rounded to nearest, as the default MXCSR does
      const __m256i wide = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 8 * q), inverse));
      const __m128i narrow =
          _mm_packs_epi32(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + q * 16), narrow);
    }
    std::fill_n(scales.data() + (pair * rows + m) * 8 + side * 4, 4, scale);
    sums[m * runs + g] = horizontal_sum(total);
  }
};

// One output channel for R activation rows from m0: y[r * ldy] for r < R.
template <int R>
void pair_channel(const RunPairs& x, int64_t m0, const uint8_t* codes, const float* scale,
             const float* offset, float* y, int64_t ldy) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i nibble = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const bool odd = x.runs % 2;
  for (int64_t p = 0; p < x.pairs; ++p) {
    const bool half = odd && p + 1 == x.pairs;  // the last run alone: 16 bytes, one scale
    _mm_prefetch(reinterpret_cast<const char*>(codes + p * 32 + AHEAD), _MM_HINT_T0);
    const __m256i packed =
        half ? _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + p * 32)))
             : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + p * 32));
    const __m128 two = half ? _mm_load_ss(scale + 2 * p)
                            : _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(scale + 2 * p)));
    const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(two), spread);
    const __m256i low = _mm256_and_si256(packed, nibble);
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
    const __m256i quarters[4] = {_mm256_unpacklo_epi8(low, zero), _mm256_unpackhi_epi8(low, zero),
                                 _mm256_unpacklo_epi8(high, zero), _mm256_unpackhi_epi8(high, zero)};
    const auto* xp = reinterpret_cast<const __m256i*>(x.codes.data() + (p * x.rows + m0) * 2 * RUN);
    const float* xs = x.scales.data() + (p * x.rows + m0) * 8;
    for (int r = 0; r < R; ++r) {
      const __m256i* xr = xp + 4 * r;
      const __m256i sums = _mm256_add_epi32(
          _mm256_add_epi32(_mm256_madd_epi16(quarters[0], _mm256_loadu_si256(xr)),
                           _mm256_madd_epi16(quarters[1], _mm256_loadu_si256(xr + 1))),
          _mm256_add_epi32(_mm256_madd_epi16(quarters[2], _mm256_loadu_si256(xr + 2)),
                           _mm256_madd_epi16(quarters[3], _mm256_loadu_si256(xr + 3))));
      const __m256 both = _mm256_mul_ps(s, _mm256_loadu_ps(xs + 8 * r));
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

struct Avx2Kernel {
  using Activations = RunPairs;
  static constexpr int ROWS = 8;  // activation rows per register block

  template <int R>
  static void channel(const RunPairs& x, int64_t m0, const uint8_t* codes, const float* scale,
                      const float* offset, float* y, int64_t ldy) {
    pair_channel<R>(x, m0, codes, scale, offset, y, ldy);
  }
};

at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale,
                       const at::Tensor& offset) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat, "x must be fp32 [M, K]");
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous(), "codes must be uint8");
  TORCH_CHECK(scale.scalar_type() == at::kHalf && offset.scalar_type() == at::kHalf,
              "scale and offset must be fp16");
  const int64_t K = x.size(1), N = codes.size(0), G = K / RUN;
  TORCH_CHECK(K % RUN == 0 && codes.size(1) * 2 == K && scale.numel() == N * G &&
                  offset.numel() == N * G, "shapes do not match");
  // At one row no other row shares the codes' transposition: the AVX512 kernel measured
  // 1.0-1.04x the AVX2 one's time there, and 0.8-0.9x from 2 rows (bench/cpu_kernels.py).
  if (x.size(0) > 1 && neuron_cpu::int4_avx512_usable())
    return neuron_cpu::int4_linear_avx512(x, codes, scale, offset);
  return neuron_cpu::int4_tiles<Avx2Kernel>(x, codes, scale, offset);
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

std::string int4_instruction_set() { return neuron_cpu::int4_avx512_usable() ? "avx512_vnni" : "avx2"; }

void set_int4_instruction_set(const std::string& name) {
  TORCH_CHECK(name == "avx512_vnni" || name == "avx2", "no int4 kernel for ", name);
  neuron_cpu::int4_use_avx512(name == "avx512_vnni");
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(neuron_cpu, m) {
  m.def("int4_linear(Tensor x, Tensor codes, Tensor scale, Tensor offset) -> Tensor");
  m.def("int4_dequantize(Tensor codes, Tensor scale, Tensor offset) -> Tensor");
  m.def("int4_instruction_set() -> str", &int4_instruction_set);
  m.def("set_int4_instruction_set(str name) -> ()", &set_int4_instruction_set);
}

TORCH_LIBRARY_IMPL(neuron_cpu, CPU, m) {
  m.impl("int4_linear", int4_linear);
  m.impl("int4_dequantize", int4_dequantize);
}
