// One decode step's attention on the CPU, read straight from the paged KV cache: each
// sequence's one query per head over its cached keys and the step's new key, which the
// caller stores after the pass (the op only reads the cache, so a compiled step stays
// pure). Done with torch ops, the keys of every sequence are first gathered out of
// their blocks and padded to the longest, per layer and step, then handed to
// scaled_dot_product_attention: a copy of the whole context and ~60 us of fixed cost
// per call, more than the attention itself for the contexts a decode step sees.
//
// Per sequence every head is done together, key row by key row (all kv heads of a row
// lie together in a block): the scores of every key, one softmax per head in fp32 (its
// exponentials eight at a time: a scalar exp per score was half the op's time at 16
// sequences), then the values weighted in one pass, so each block is read from memory
// once, in order. A long context is split into spans of about SPAN keys, each its own
// work item with its own largest scores, sums and weighted values, merged after (as
// flash-decoding does on a GPU), so that one sequence's threads share its context.
//
// Layouts: q [B, Hq, D], k and v [B, Hkv, D] (the new token's), each with its heads
// contiguous but any stride between sequences (views of one fused QKV projection are
// read in place, not copied), all fp32, caches [blocks, block_size, Hkv, D] in fp32 or
// fp16 (half the bytes a step reads; the new key and value are rounded to the cache's
// type, as they will be stored), D a multiple of 8; block_tables int32 [B, W],
// context_lens int32 [B] counting the new key.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include "avx2.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

using neuron_cpu::horizontal_sum;

__m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__m256 load8(const at::Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

template <typename T>
float dot(const float* a, const T* b, int64_t n) {  // two chains; n a multiple of 8
  __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    even = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), even);
    odd = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load8(b + i + 8), odd);
  }
  if (i < n) even = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load8(b + i), even);
  return horizontal_sum(_mm256_add_ps(even, odd));
}

// e^x for x <= 0 (a score less the largest), 8 at a time: 2^n * e^r with |r| <= ln2 / 2,
// e^r by its degree-6 Taylor-like polynomial (Cephes' coefficients; relative error
// ~2e-7); below -87 the result is clamped to e^-87, which a softmax cannot tell from 0.
// A NaN stays NaN (`max` returns its second operand when either is NaN), as std::exp's.
__m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                        5.0000001201e-1f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i power = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(power));
}

// weights[t] = e^(weights[t] - largest) for t < n; returns their sum.
float exponentiate(float* weights, int64_t n, float largest) {
  const __m256 top = _mm256_set1_ps(largest);
  __m256 total8 = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(weights + t), top));
    _mm256_storeu_ps(weights + t, e);
    total8 = _mm256_add_ps(total8, e);
  }
  float total = horizontal_sum(total8);
  for (; t < n; ++t) total += weights[t] = std::exp(weights[t] - largest);
  return total;
}

template <typename T>
void add_scaled(float* out, const T* v, float weight, int64_t n) {
  const __m256 w = _mm256_set1_ps(weight);
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(load8(v + i), w, _mm256_loadu_ps(out + i)));
}

constexpr int64_t SPAN = 256;  // keys per work item, at most (rounded to whole blocks)

template <typename T>  // the cache's element: float or at::Half
struct Step {
  const float* q;
  const T *k, *v, *k_cache, *v_cache;
  const int32_t *tables, *lens;
  int64_t heads, kv_heads, dim, block_size, width;
  int64_t q_stride, k_stride, v_stride;  // between sequences
  float scale;

  // Calls visit(t, row) for every key (or value) row t in [first, end) of sequence b,
  // all its kv heads [Hkv, D], in order: block by block from the cache (first is a
  // block's), then the new one if end is the last. Each block is read whole and in
  // order. Where the next block does not follow this one in memory (blocks of
  // sequences decoding together interleave), it is fetched into L2 as this one is
  // read: the hardware prefetcher only follows a sequential stream, and one stream of
  // 16 rows at a time used a fifth of the memory's bandwidth (16 sequences of 500 keys:
  // 0.73-0.82x the time). Where it does follow, fetching it too measured 1.2x the time.
  template <typename Visit>
  void rows(const T* cache, const T* fresh, int64_t b, int64_t first, int64_t end,
            Visit visit) const {
    const int64_t cached = std::min<int64_t>(lens[b] - 1, end), row = kv_heads * dim;
    const int32_t* table = tables + b * width;
    for (int64_t t0 = first; t0 < cached; t0 += block_size) {
      const int64_t count = std::min(cached, t0 + block_size) - t0, index = t0 / block_size;
      if (t0 + block_size < cached && table[index + 1] != table[index] + 1)
        neuron_cpu::prefetch<_MM_HINT_T1>(cache + table[index + 1] * block_size * row,
                                          block_size * row * sizeof(T));
      const T* block = cache + table[index] * block_size * row;
      for (int64_t t = 0; t < count; ++t) visit(t0 + t, block + t * row);
    }
    if (end == lens[b]) visit(end - 1, fresh);
  }

  // One work item: keys [first, end) of sequence b. Per query head, into `part`
  // [heads, dim + 2]: the values weighted by e^(score - largest), then the largest score
  // and the sum of those weights.
  void attend(int64_t b, int64_t first, int64_t end, std::vector<float>& scores, float* part) const {
    const int64_t group = heads / kv_heads, keys = end - first, stride = dim + 2;
    scores.resize(heads * keys);
    const float* queries = q + b * q_stride;
    for (int64_t h = 0; h < heads; ++h) part[h * stride + dim] = -std::numeric_limits<float>::infinity();
    rows(k_cache, k + b * k_stride, b, first, end, [&](int64_t t, const T* key) {
      for (int64_t h = 0; h < heads; ++h) {
        const float s = dot(queries + h * dim, key + h / group * dim, dim) * scale;
        scores[h * keys + t - first] = s;
        part[h * stride + dim] = std::max(part[h * stride + dim], s);
      }
    });
    for (int64_t h = 0; h < heads; ++h) {
      float* out = part + h * stride;
      out[dim + 1] = exponentiate(scores.data() + h * keys, keys, out[dim]);
      std::fill_n(out, dim, 0.f);
    }
    rows(v_cache, v + b * v_stride, b, first, end, [&](int64_t t, const T* value) {
      for (int64_t h = 0; h < heads; ++h)
        add_scaled(part + h * stride, value + h / group * dim, scores[h * keys + t - first], dim);
    });
  }

  // out [heads, dim] of one sequence from its spans' parts, `count` of them one after
  // another: each weighted by e^(its largest score - the largest of all).
  void merge(const float* parts, int64_t count, float* out) const {
    const int64_t stride = dim + 2, apart = heads * stride;
    for (int64_t h = 0; h < heads; ++h) {
      float largest = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < count; ++s) largest = std::max(largest, parts[s * apart + h * stride + dim]);
      float total = 0.f;
      float* row = out + h * dim;
      std::fill_n(row, dim, 0.f);
      for (int64_t s = 0; s < count; ++s) {
        const float* part = parts + s * apart + h * stride;
        const float weight = count == 1 ? 1.f : std::exp(part[dim] - largest);
        total += weight * part[dim + 1];
        add_scaled(row, part, weight, dim);
      }
      const __m256 inverse = _mm256_set1_ps(1.f / total);
      for (int64_t i = 0; i < dim; i += 8)
        _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
    }
  }
};

// t [B, H, D] as `type` (q: fp32; the new k and v: the cache's), as is where each
// sequence's heads are contiguous, else copied so.
at::Tensor heads_contiguous(const at::Tensor& t, at::ScalarType type) {
  const at::Tensor typed = t.to(type);
  return typed.stride(2) == 1 && typed.stride(1) == typed.size(2) ? typed : typed.contiguous();
}

template <typename T>
void attend_all(const Step<T>& step, const int32_t* len, int64_t B, int64_t block_size, float* outs) {
  // Spans of whole blocks, each a work item; sequence b's are [first[b], first[b + 1]).
  const int64_t span = std::max<int64_t>(1, SPAN / block_size) * block_size;
  std::vector<int64_t> first(B + 1, 0);
  for (int64_t b = 0; b < B; ++b) first[b + 1] = first[b] + (len[b] + span - 1) / span;
  std::vector<int64_t> owner(first[B]);
  for (int64_t b = 0; b < B; ++b) std::fill(owner.begin() + first[b], owner.begin() + first[b + 1], b);
  const int64_t part = step.heads * (step.dim + 2);
  std::vector<float> parts(first[B] * part);
  // Threads only where there is work enough to share: one short context is done in the
  // time it takes to wake them.
  const int64_t longest = std::min<int64_t>(span, *std::max_element(len, len + B));
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / (longest * step.heads * step.dim));
  at::parallel_for(0, first[B], grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t s = begin; s < end; ++s) {
      const int64_t b = owner[s], t0 = (s - first[b]) * span;
      step.attend(b, t0, std::min<int64_t>(len[b], t0 + span), scores, parts.data() + s * part);
    }
  });
  for (int64_t b = 0; b < B; ++b)
    step.merge(parts.data() + first[b] * part, first[b + 1] - first[b], outs + b * step.heads * step.dim);
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& block_tables, const at::Tensor& context_lens,
                            double scale) {
  for (const at::Tensor* t : {&q, &k, &v})
    TORCH_CHECK(t->scalar_type() == at::kFloat, "q, k and v must be fp32");
  const at::ScalarType type = k_cache.scalar_type();
  TORCH_CHECK((type == at::kFloat || type == at::kHalf) && v_cache.scalar_type() == type,
              "the caches must both be fp32 or both fp16");
  TORCH_CHECK(block_tables.scalar_type() == at::kInt && context_lens.scalar_type() == at::kInt,
              "block_tables and context_lens must be int32");
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && k_cache.dim() == 4, "q, k: [B, H, D]; caches: 4-d");
  const int64_t B = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k.size(1);
  TORCH_CHECK(dim % 8 == 0 && heads % kv_heads == 0 && k.size(0) == B && v.sizes() == k.sizes() &&
                  k.size(2) == dim && k_cache.size(2) == kv_heads && k_cache.size(3) == dim &&
                  v_cache.sizes() == k_cache.sizes() && block_tables.size(0) == B &&
                  context_lens.numel() == B,
              "shapes do not match");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "the caches must be contiguous");
  const at::Tensor qc = heads_contiguous(q, at::kFloat);
  const at::Tensor kc = heads_contiguous(k, type), vc = heads_contiguous(v, type);
  const at::Tensor tables = block_tables.contiguous(), lens = context_lens.contiguous();
  const int64_t capacity = tables.size(1) * k_cache.size(1);
  const int32_t* len = lens.data_ptr<int32_t>();
  TORCH_CHECK(std::all_of(len, len + B, [&](int32_t n) { return n >= 1 && n - 1 <= capacity; }),
              "context_lens must count the new key and fit the block tables");
  const int32_t* table = tables.data_ptr<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c * k_cache.size(1) < len[b] - 1; ++c)
      TORCH_CHECK(table[b * tables.size(1) + c] >= 0 && table[b * tables.size(1) + c] < k_cache.size(0),
                  "block_tables name a block the cache does not have");
  at::Tensor out = at::empty({B, heads, dim}, q.options());
  const auto run = [&](auto element) {
    using T = decltype(element);
    const Step<T> step{qc.data_ptr<float>(),   kc.data_ptr<T>(),      vc.data_ptr<T>(),
                       k_cache.data_ptr<T>(),  v_cache.data_ptr<T>(), table,
                       len,                    heads,                 kv_heads,
                       dim,                    k_cache.size(1),       tables.size(1),
                       qc.stride(0),           kc.stride(0),          vc.stride(0),
                       static_cast<float>(scale)};
    attend_all(step, len, B, k_cache.size(1), out.data_ptr<float>());
  };
  if (type == at::kHalf)
    run(at::Half{});
  else
    run(float{});
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(neuron_cpu, m) {
  m.def(
      "decode_attention(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache, "
      "Tensor block_tables, Tensor context_lens, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(neuron_cpu, CPU, m) { m.impl("decode_attention", decode_attention); }
