"""Write new keys/values into the paged cache (one index_copy per tensor: a single
kernel on any device, and safe to capture in a CUDA graph)."""

from __future__ import annotations

import torch


def store_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """k, v [T, Hkv, D] go to slots ``block * block_size + offset`` of the caches
    [num_blocks, block_size, Hkv, D]; every slot must be valid (no -1 padding)."""
    slots = slot_mapping.to(device=k_cache.device, dtype=torch.long)
    hkv, d = k_cache.shape[2], k_cache.shape[3]
    k_cache.view(-1, hkv, d).index_copy_(0, slots, k.to(k_cache.dtype))
    v_cache.view(-1, hkv, d).index_copy_(0, slots, v.to(v_cache.dtype))
