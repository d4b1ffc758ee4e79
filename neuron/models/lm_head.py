"""The vocabulary matrix held as int8: the embedding lookup and the output projection
(one copy when they are tied), with logits at full fp32 resolution.

Two things make a plain int8 head fall short. Weight-only kernels return their
activation dtype, and bf16 logits come in steps of 1/16 near 10 (coarse, tied
logprobs). And one int8 scale per vocabulary row is coarser than GGUF's Q8_0 (one
per 32 values): measured on SmolLM2, it alone cost 3.6% of top-1 agreement with
the fp32 model. So both the rows and the hidden state are split into two int8 parts
(x ≈ (hi + lo / 254) * s, ~16 bits of precision) and go through one int8 × int8
matmul with exact int32 sums: logits within ~1e-4 of the fp32 product.

A decode step has few rows, and there that matmul costs as much as every layer
together (it reads both parts, 2 bytes per weight). So for up to `FAST_MAX_ROWS` rows
the high part alone ranks the vocabulary (one byte per weight; for up to
`PACKED_RANK_ROWS` rows through our AVX2 kernel, neuron_kernels/cpu, or torch's with bf16
activations where ours cannot run),
and the `REFINED` best-ranked tokens of each row get the exact logit: those carry the
argmax and the logprobs a client sees, while the rest keep the ranking's value
(measured on SmolLM2: within 0.7 of the exact logit; the distributions differ by
0.2% total variation on average).

torch's int8 × int8 matmul (`_int_mm`) is fast only on CPUs with VNNI or AMX
instructions; elsewhere (AVX2) it is two orders of magnitude slower (measured on an AVX2
EPYC: 420 ms to rank 16 rows). There, where torch has fbgemm (x86), rows beyond
`PACKED_RANK_ROWS` are ranked with fbgemm's int8 GEMM on the high part (3.8 ms for 16
rows), and beyond `FAST_MAX_ROWS` the exact logits come from an fp32 matmul on the rows
widened a chunk at a time. fbgemm quantises the activations per call, to 7 bits (with 8,
AVX2's pairwise int16 sums saturate): a coarser ranking, measured on SmolLM2 within 4.9
of the exact logit (0.45 on average), the best token always among its first 30; after
refining, the chosen token's logprob within 0.13 of the exact head's (0.006 on average).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from neuron.models.quant_linear import fbgemm_available
from neuron_kernels.cpu import cpu_kernels

_LOW = 254.0  # the remainder of rounding to the high part lies within ±s/2: 127 steps
FAST_MAX_ROWS = 16
REFINED = 128
# `_weight_int8pack_mm` walks its rows one by one: beyond this many, ranking with the
# int8 × int8 matmul on the high part is faster.
PACKED_RANK_ROWS = 4
_WIDEN_ROWS = 4096  # vocabulary rows widened to fp32 at once where `_int_mm` is slow


def split_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [R, K] → (int8 [2R, K]: high rows then low rows, fp32 scale [R]), with
    x ≈ (high + low / 254) * scale[:, None]."""
    x = x.float()
    scale = x.abs().amax(dim=-1).clamp(min=torch.finfo(torch.float32).tiny) / 127.0
    high = torch.round(x / scale[:, None])
    low = torch.round((x - high * scale[:, None]) * (_LOW / scale[:, None])).clamp_(-127, 127)
    return torch.cat((high, low)).to(torch.int8), scale


def _widen(high: torch.Tensor, low: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Rows of the two int8 parts back to fp32: (high + low / 254) * scale."""
    return high.float().add_(low.float(), alpha=1 / _LOW).mul_(scale[:, None])


def _int8_gemm_native() -> bool:
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8"))


_INT8_GEMM_NATIVE = _int8_gemm_native()


def _fbgemm_rows(high: torch.Tensor, scale: torch.Tensor) -> torch.ScriptObject | None:
    """The high part [V, H] packed for fbgemm's int8 GEMM; None without fbgemm (or once
    torch drops the quantized tensors it is packed from, deprecated since 2.10)."""
    if not fbgemm_available():
        return None
    zeros = torch.zeros(high.shape[0], dtype=torch.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the deprecation notice
            rows = torch._make_per_channel_quantized_tensor(high, scale.double(), zeros, 0)
        return torch.ops.quantized.linear_prepack(rows, None)
    except (AttributeError, RuntimeError):
        return None


class Int8Rows(nn.Module):
    """W [V, H] as two int8 parts with one fp32 scale per row."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        parts, scale = split_int8(weight)
        self.vocab = weight.shape[0]
        self.register_buffer("parts", parts)  # [2V, H]
        self.register_buffer("scales", scale)
        self.register_buffer("scales_bf16", scale.to(torch.bfloat16))
        # Only where `_int_mm` is slow: fbgemm's packing of the high part.
        self.ranker = None if _INT8_GEMM_NATIVE else _fbgemm_rows(parts[: self.vocab], scale)
        self.opaque_nbytes = 0 if self.ranker is None else parts.shape[1] * self.vocab

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ids [T] as fp32 [T, H]."""
        high = self.parts.index_select(0, ids)
        low = self.parts.index_select(0, ids + self.vocab)
        return _widen(high, low, self.scales.index_select(0, ids))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] of hidden [N, H]: exact, or ranked then refined (see above)."""
        if hidden.shape[0] > FAST_MAX_ROWS:
            return self.exact(hidden)
        logits = self._ranking(hidden)
        best = logits.topk(REFINED, dim=-1, sorted=False).indices  # [N, R]
        if cpu_kernels():  # ours: the chosen rows widened in registers, not gathered
            exact = torch.ops.neuron_cpu.int8_rows_refine(
                hidden.float(), self.parts, self.scales, best
            )
        else:
            rows = self.embed(best.view(-1)).view(*best.shape, -1)  # [N, R, H]
            exact = torch.bmm(rows, hidden.float().unsqueeze(2)).squeeze(2)
        return logits.scatter_(1, best, exact)

    def _ranking(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] from the high part of the rows only."""
        high = self.parts[: self.vocab]
        if hidden.shape[0] <= PACKED_RANK_ROWS:
            if cpu_kernels():  # ours: int16 activations, 4x faster without native bf16
                return torch.ops.neuron_cpu.int8_rows_linear(hidden.float(), high, self.scales)
            rows = hidden.to(torch.bfloat16)
            return torch.ops.aten._weight_int8pack_mm(rows, high, self.scales_bf16).float()
        if self.ranker is not None:
            return torch.ops.quantized.linear_dynamic(hidden.float(), self.ranker, True)
        parts, scale = split_int8(hidden)
        n = hidden.shape[0]
        sums = torch._int_mm(parts, high.t()).float()  # [2N, V]
        logits = sums[:n].add_(sums[n:], alpha=1 / _LOW)
        return logits.mul_(scale[:, None]).mul_(self.scales)

    def exact(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] of hidden [N, H] within ~1e-4 of the fp32 product."""
        if self.ranker is not None:  # int8 × int8 matmuls are slow here: widen the rows
            return self._exact_widened(hidden.float())
        parts, scale = split_int8(hidden)
        n, v = hidden.shape[0], self.vocab
        sums = torch._int_mm(parts, self.parts.t()).float()  # [2N, 2V]: hh, hl / lh, ll
        cross = sums[:n, v:].add_(sums[n:, :v])
        logits = sums[:n, :v].add_(cross, alpha=1 / _LOW)
        return logits.mul_(scale[:, None]).mul_(self.scales)

    def _exact_widened(self, hidden: torch.Tensor) -> torch.Tensor:
        """The fp32 product with the rows widened to fp32 a chunk at a time (never the
        whole fp32 matrix at once)."""
        logits = hidden.new_empty(hidden.shape[0], self.vocab)
        for start in range(0, self.vocab, _WIDEN_ROWS):
            end = min(start + _WIDEN_ROWS, self.vocab)
            low = self.parts[self.vocab + start : self.vocab + end]
            rows = _widen(self.parts[start:end], low, self.scales[start:end])
            logits[:, start:end] = hidden @ rows.t()
        return logits

    @property
    def dequantized(self) -> torch.Tensor:
        high, low = self.parts.split(self.vocab)
        return _widen(high, low, self.scales)
