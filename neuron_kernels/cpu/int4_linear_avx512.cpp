// int4_linear.cpp's product (the same codes, scales and offsets; int16 activations per run
// of 32) on CPUs with AVX512-VNNI. `vpdpwssd` multiplies int16 pairs and adds them into
// int32 lanes in one instruction, so a run's 32 products need 16 pair-steps and no adds.
// Where the AVX2 kernel converts and scales the sums of every pair of runs, this one gives
// each of a register's 16 32-bit lanes its own run: a block of 16 runs is converted and
// scaled once. The codes of 16 runs are transposed in registers (4 loads, 12 permutes) so
// that lane L of word k holds bytes 4k .. 4k + 3 of run L; shifting and masking that word
// gives each lane its pair of codes for four steps. Runs after the last whole block go
// four to a register, as the AVX2 kernel's pairs do.
//
// Every function that runs AVX512 code carries NEURON_AVX512; the driver (int4_tiles.h)
// stays AVX2 code and calls them only where `int4_avx512_usable()`.
#include <ATen/ATen.h>
#include <immintrin.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "avx2.h"
#include "int4_tiles.h"

#define NEURON_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace {

constexpr int64_t RUN = neuron_cpu::INT4_RUN;
constexpr int64_t AHEAD = neuron_cpu::INT4_AHEAD;
constexpr int64_t LANES = 16;  // runs per block, one per 32-bit lane
constexpr int64_t QUAD = 4;    // runs per register after the last whole block

// Step t of a block multiplies lane L's codes i and i + 2 of run L, for
// i = 4 (t / 4) + {0, 1, 16, 17}[t % 4] (how `lane_channel` masks them out); the int16
// activations of one run, in that order.
alignas(64) constexpr int16_t STEP_ORDER[32] = {
    0,  2,  1,  3,  16, 18, 17, 19, 4,  6,  5,  7,  20, 22, 21, 23,
    8,  10, 9,  11, 24, 26, 25, 27, 12, 14, 13, 15, 28, 30, 29, 31};

// The activations, quantised as in int4_linear.cpp. Per block of 16 runs and row, the 16
// steps of 16 lanes x 2 int16 (lane L of step t: run L's pair for that step), layout
// [blocks, rows, 16 x 32], beside one scale per lane [blocks, rows, 16]. The runs after the
// last whole block, four to a register: per quad and row, for each quarter q, the four runs'
// x[8q .. 8q + 7] in turn (the 128-bit lanes `vpunpck{l,h}bw` widens in), [quads, rows, 128],
// and their scales [s x4 per run], [quads, rows, 16], zeros past the last run. The exact fp32
// sums per run are [rows, runs].
struct LaneRuns {
  neuron_cpu::LineVector<int16_t> wide, narrow;
  neuron_cpu::LineVector<float> wide_scales, narrow_scales, sums;
  int64_t rows, runs, blocks, quads;

  NEURON_AVX512 LaneRuns(const float* x, int64_t rows, int64_t runs)
      : wide(runs / LANES * rows * LANES * RUN),
        narrow((runs % LANES + QUAD - 1) / QUAD * rows * QUAD * RUN),
        wide_scales(runs / LANES * rows * LANES),
        narrow_scales((runs % LANES + QUAD - 1) / QUAD * rows * 16),
        sums(rows * runs),
        rows(rows),
        runs(runs),
        blocks(runs / LANES),
        quads((runs % LANES + QUAD - 1) / QUAD) {
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t g = 0; g < runs; ++g) quantize(x + (m * runs + g) * RUN, m, g);
  }

  NEURON_AVX512 void quantize(const float* v, int64_t m, int64_t g) {
    const __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16);
    const float top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const float scale = top > 0.f ? top / 32767.f : 1.f;
    const __m512 inverse = _mm512_set1_ps(1.f / scale);
    const __m256i low = _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(a, inverse)));
    const __m256i high = _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(b, inverse)));
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
    sums[m * runs + g] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    if (g < blocks * LANES) {
      const int64_t block = g / LANES, lane = g % LANES;
      const __m512i steps = _mm512_permutexvar_epi16(_mm512_load_si512(STEP_ORDER), q);
      const __m512i stride = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160,
                                               176, 192, 208, 224, 240);  // LANES int32s a step
      _mm512_i32scatter_epi32(wide.data() + (block * rows + m) * LANES * RUN + 2 * lane, stride,
                              steps, 4);
      wide_scales[(block * rows + m) * LANES + lane] = scale;
      return;
    }
    const int64_t rest = g - blocks * LANES, quad = rest / QUAD, side = rest % QUAD;
    int16_t* out = narrow.data() + (quad * rows + m) * QUAD * RUN + side * 8;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_extracti32x4_epi32(q, 0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm512_extracti32x4_epi32(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 64), _mm512_extracti32x4_epi32(q, 2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 96), _mm512_extracti32x4_epi32(q, 3));
    for (int e = 0; e < 4; ++e) narrow_scales[(quad * rows + m) * 16 + side * 4 + e] = scale;
  }
};

// One output channel for R activation rows from m0: y[r * ldy] for r < R.
template <int R>
NEURON_AVX512 void lane_channel(const LaneRuns& x, int64_t m0, const uint8_t* codes,
                                const float* scale, const float* offset, float* y, int64_t ldy) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512(), pair = _mm512_set1_epi32(0x000F000F);
  // lane L of word k: dword k of run L, from the four registers of four runs each
  const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  for (int64_t b = 0; b < x.blocks; ++b) {
    const uint8_t* block = codes + b * LANES * 16;
    for (int line = 0; line < 4; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(block + AHEAD + 64 * line), _MM_HINT_T0);
    const __m512i z0 = _mm512_loadu_si512(block), z1 = _mm512_loadu_si512(block + 64);
    const __m512i z2 = _mm512_loadu_si512(block + 128), z3 = _mm512_loadu_si512(block + 192);
    const int16_t* xb = x.wide.data() + (b * x.rows + m0) * LANES * RUN;
    __m512i sums[R];
    for (int r = 0; r < R; ++r) sums[r] = zero;
    for (int k = 0; k < 4; ++k) {
      const __m512i index = _mm512_add_epi32(gather, _mm512_set1_epi32(k));
      const __m512i word = _mm512_mask_blend_epi32(0xFF00, _mm512_permutex2var_epi32(z0, index, z1),
                                                   _mm512_permutex2var_epi32(z2, index, z3));
      const __m512i steps[4] = {_mm512_and_si512(word, pair),
                                _mm512_and_si512(_mm512_srli_epi32(word, 8), pair),
                                _mm512_and_si512(_mm512_srli_epi32(word, 4), pair),
                                _mm512_and_si512(_mm512_srli_epi32(word, 12), pair)};
      for (int r = 0; r < R; ++r) {
        const auto* xr = reinterpret_cast<const __m512i*>(xb + r * LANES * RUN) + 4 * k;
        for (int j = 0; j < 4; ++j) sums[r] = _mm512_dpwssd_epi32(sums[r], steps[j], _mm512_load_si512(xr + j));
      }
    }
    const __m512 s = _mm512_loadu_ps(scale + b * LANES);
    const float* xs = x.wide_scales.data() + (b * x.rows + m0) * LANES;
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[r]), _mm512_mul_ps(s, _mm512_load_ps(xs + r * LANES)), acc[r]);
  }
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const int64_t first = x.blocks * LANES;
  for (int64_t q = 0; q < x.quads; ++q) {
    const int64_t here = x.runs - first - q * QUAD < QUAD ? x.runs - first - q * QUAD : QUAD;
    const uint8_t* quad = codes + (first + q * QUAD) * 16;
    const __m512i packed = _mm512_maskz_loadu_epi8(here == QUAD ? ~0ull : (1ull << (16 * here)) - 1, quad);
    const __m128 four = _mm_maskz_loadu_ps((1u << here) - 1, scale + first + q * QUAD);
    const __m512 s = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(four));
    const __m512i low = _mm512_and_si512(packed, nibble);
    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
    const __m512i quarters[4] = {_mm512_unpacklo_epi8(low, zero), _mm512_unpackhi_epi8(low, zero),
                                 _mm512_unpacklo_epi8(high, zero), _mm512_unpackhi_epi8(high, zero)};
    const auto* xq = reinterpret_cast<const __m512i*>(x.narrow.data() + (q * x.rows + m0) * QUAD * RUN);
    const float* xs = x.narrow_scales.data() + (q * x.rows + m0) * 16;
    for (int r = 0; r < R; ++r) {
      __m512i sums = zero;
      for (int j = 0; j < 4; ++j) sums = _mm512_dpwssd_epi32(sums, quarters[j], _mm512_load_si512(xq + 4 * r + j));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(s, _mm512_load_ps(xs + 16 * r)), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {  // the offset term
    const float* sums = x.sums.data() + (m0 + r) * x.runs;
    __m512 o = acc[r];
    int64_t g = 0;
    for (; g + 16 <= x.runs; g += 16)
      o = _mm512_fmadd_ps(_mm512_loadu_ps(offset + g), _mm512_loadu_ps(sums + g), o);
    if (g < x.runs) {
      const __mmask16 k = (1u << (x.runs - g)) - 1;
      o = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, offset + g), _mm512_maskz_loadu_ps(k, sums + g), o);
    }
    y[r * ldy] = _mm512_reduce_add_ps(o);
  }
}

struct Avx512Kernel {
  using Activations = LaneRuns;
  // Rows per register block: 4 measured faster than 8 at 8 and 16 rows (0.9x; the rows'
  // activations then share L1 with the tile's codes), 12 and 16 slower still.
  static constexpr int ROWS = 4;

  template <int R>
  static void channel(const LaneRuns& x, int64_t m0, const uint8_t* codes, const float* scale,
                      const float* offset, float* y, int64_t ldy) {
    lane_channel<R>(x, m0, codes, scale, offset, y, ldy);
  }
};

}  // namespace

namespace neuron_cpu {

bool int4_avx512_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}

namespace {
std::atomic<bool>& avx512_chosen() {
  static std::atomic<bool> chosen{[] {
    const char* setting = std::getenv("NEURON_CPU_AVX512");
    return int4_avx512_supported() && !(setting != nullptr && std::strcmp(setting, "0") == 0);
  }()};
  return chosen;
}
}  // namespace

bool int4_avx512_usable() { return avx512_chosen().load(std::memory_order_relaxed); }

void int4_use_avx512(bool on) {
  TORCH_CHECK(!on || int4_avx512_supported(), "this CPU has no AVX512-VNNI");
  avx512_chosen().store(on, std::memory_order_relaxed);
}

at::Tensor int4_linear_avx512(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& scale,
                              const at::Tensor& offset) {
  return int4_tiles<Avx512Kernel>(x, codes, scale, offset);
}

}  // namespace neuron_cpu
