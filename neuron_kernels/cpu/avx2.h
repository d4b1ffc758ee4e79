// Small AVX2 helpers the CPU kernels share.
#pragma once

#include <c10/util/Half.h>
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace neuron_cpu {

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

template <int Hint = _MM_HINT_T0>
inline void prefetch(const void* start, int64_t bytes) {
  const char* p = static_cast<const char*>(start);
  for (int64_t line = 0; line < bytes; line += 64) _mm_prefetch(p + line, static_cast<_mm_hint>(Hint));
}

// Storage on whole cache lines, for arrays the kernels read in 32-byte loads: a load that
// straddles two lines costs two (measured: the int4 layers at 16 rows 0.87x the time).
template <typename T>
struct LineAllocator {
  using value_type = T;
  LineAllocator() = default;
  template <typename U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const LineAllocator<U>&) const { return true; }
};

template <typename T>
using LineVector = std::vector<T, LineAllocator<T>>;

inline void widen_halves(const at::Half* src, float* dst, int64_t n) {
  const auto* bits = reinterpret_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(bits[i]);
}

}  // namespace neuron_cpu
