"""Rotary position embeddings: frequencies (plain, linear, llama3 scaling) and tables.

The cos/sin tables cover every position up to the context length and are looked up
once per forward pass; every layer reuses the same lookup.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuron.models.config import ModelConfig


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Rotary frequencies, with linear or llama3 scaling applied."""
    dim = config.head_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    inv_freq = 1.0 / (config.rope_theta**exponents)
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type")
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        factor = float(scaling["factor"])
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_len = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, smoothed, scaled)
    return inv_freq


class Rotary(nn.Module):
    """cos/sin tables for every position up to the context length, indexed per token.

    Both tables span the whole head dim, with the sign of rotate-half folded into the
    sine one, so that a rotation is three in-place kernels (see `apply_rope_`).
    """

    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.config = config
        self.dtype = dtype
        self.rebuild(rope_inv_freq(config).to(device))

    def rebuild(self, inv_freq: torch.Tensor) -> None:
        """Recompute the tables (also used when a GGUF carries its own frequency factors)."""
        positions = torch.arange(self.config.max_position_embeddings, device=inv_freq.device)
        freqs = positions.float()[:, None] * inv_freq.float()[None, :]
        cos, sin = freqs.cos(), freqs.sin()
        self.cos = torch.cat((cos, cos), dim=-1).to(self.dtype)
        self.sin = torch.cat((-sin, sin), dim=-1).to(self.dtype)

    def to_dtype(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.cos, self.sin = self.cos.to(dtype), self.sin.to(dtype)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, ±sin [T, 1, D] of the pass's positions: looked up once, used by every layer."""
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def apply_rope_(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate x [T, H, D] in place (the half-split layout transformers uses):
    x * cos + rotate_half(x) * sin, where rotate_half swaps the halves (one copy)."""
    cos, sin = rope
    t, h, d = x.shape
    swapped = x.view(t, h, 2, d // 2).flip(2).view(t, h, d)
    return x.mul_(cos).addcmul_(swapped, sin)
