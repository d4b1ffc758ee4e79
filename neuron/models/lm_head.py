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
the high part alone ranks the vocabulary (one byte per weight, bf16 activations),
and the `REFINED` best-ranked tokens of each row get the exact logit: those carry the
argmax and the logprobs a client sees, while the rest keep the ranking's value
(measured on SmolLM2: within 0.7 of the exact logit; the distributions differ by
0.2% total variation on average).
"""

from __future__ import annotations

import torch
from torch import nn

_LOW = 254.0  # the remainder of rounding to the high part lies within ±s/2: 127 steps
FAST_MAX_ROWS = 16
REFINED = 128
# `_weight_int8pack_mm` walks its rows one by one: beyond this many, ranking with the
# int8 × int8 matmul on the high part is faster.
PACKED_RANK_ROWS = 4


def split_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [R, K] → (int8 [2R, K]: high rows then low rows, fp32 scale [R]), with
    x ≈ (high + low / 254) * scale[:, None]."""
    x = x.float()
    scale = x.abs().amax(dim=-1).clamp(min=torch.finfo(torch.float32).tiny) / 127.0
    high = torch.round(x / scale[:, None])
    low = torch.round((x - high * scale[:, None]) * (_LOW / scale[:, None])).clamp_(-127, 127)
    return torch.cat((high, low)).to(torch.int8), scale


class Int8Rows(nn.Module):
    """W [V, H] as two int8 parts with one fp32 scale per row."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        parts, scale = split_int8(weight)
        self.vocab = weight.shape[0]
        self.register_buffer("parts", parts)  # [2V, H]
        self.register_buffer("scales", scale)
        self.register_buffer("scales_bf16", scale.to(torch.bfloat16))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ids [T] as fp32 [T, H]."""
        high = self.parts.index_select(0, ids).float()
        low = self.parts.index_select(0, ids + self.vocab).float()
        return high.add_(low, alpha=1 / _LOW).mul_(self.scales.index_select(0, ids)[:, None])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] of hidden [N, H]: exact, or ranked then refined (see above)."""
        if hidden.shape[0] > FAST_MAX_ROWS:
            return self.exact(hidden)
        logits = self._ranking(hidden)
        best = logits.topk(REFINED, dim=-1, sorted=False).indices  # [N, R]
        rows = self.embed(best.view(-1)).view(*best.shape, -1)  # [N, R, H]
        exact = torch.bmm(rows, hidden.float().unsqueeze(2)).squeeze(2)
        return logits.scatter_(1, best, exact)

    def _ranking(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] from the high part of the rows only."""
        high = self.parts[: self.vocab]
        if hidden.shape[0] <= PACKED_RANK_ROWS:
            rows = hidden.to(torch.bfloat16)
            return torch.ops.aten._weight_int8pack_mm(rows, high, self.scales_bf16).float()
        parts, scale = split_int8(hidden)
        n = hidden.shape[0]
        sums = torch._int_mm(parts, high.t()).float()  # [2N, V]
        logits = sums[:n].add_(sums[n:], alpha=1 / _LOW)
        return logits.mul_(scale[:, None]).mul_(self.scales)

    def exact(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits fp32 [N, V] of hidden [N, H] within ~1e-4 of the fp32 product."""
        parts, scale = split_int8(hidden)
        n, v = hidden.shape[0], self.vocab
        sums = torch._int_mm(parts, self.parts.t()).float()  # [2N, 2V]: hh, hl / lh, ll
        cross = sums[:n, v:].add_(sums[n:, :v])
        logits = sums[:n, :v].add_(cross, alpha=1 / _LOW)
        return logits.mul_(scale[:, None]).mul_(self.scales)

    @property
    def dequantized(self) -> torch.Tensor:
        high, low = self.parts.float().split(self.vocab)
        return (high + low / _LOW) * self.scales[:, None]
