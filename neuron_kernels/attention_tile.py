"""The online-softmax step both attention kernels run per key tile."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def attend_tile(
    q, k, v, visible, m_i, l_i, acc, qk_scale, UPCAST: tl.constexpr, PRECISION: tl.constexpr
):
    """Fold one tile of keys/values into the running (max, sum, output) of each
    query row; scores are in the exp2 domain (qk_scale includes log2 e)."""
    if UPCAST:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    s = tl.where(visible, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    # Rows that have seen no key yet keep m = -inf; guard the -inf - -inf NaN.
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return m_new, l_i, acc
