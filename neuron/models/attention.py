"""The seam between the decoder, the engine and the kernels.

The engine describes one forward pass with an `AttentionMetadata`; every
attention layer writes its new keys and values into the paged `KVCache` and
then attends through `kernels`, which picks Triton on CUDA and the torch
reference elsewhere. Nothing here knows about scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

import neuron_kernels as kernels
from neuron_kernels.cpu import cpu_kernels


@dataclass
class AttentionMetadata:
    """Where the tokens of one forward pass sit in their sequences and in the cache.

    A pass is either all prefill (one or more prompt chunks) or all decode (one
    new token per sequence).

    slot_mapping: int64 [T], cache slot (block * block_size + offset) of each new token.
    Prefill:
      cu_seqlens_q: int32 [B+1], offsets of each sequence's new tokens in the batch.
      cu_seqlens_k: int32 [B+1], offsets of each sequence's keys (cached prefix + new).
      max_seqlen_q / max_seqlen_k: the largest of each.
      key_slots: int64 [sum of key lengths] when some sequence has a cached prefix:
        the cache slots of every key, in order; None when no sequence has a prefix
        (then the fresh keys are used directly, with no gather).
    Decode:
      block_tables: int32 [B, max_blocks], context_lens: int32 [B] (keys including
      the new token).
    """

    is_prefill: bool
    slot_mapping: torch.Tensor
    cu_seqlens_q: torch.Tensor | None = None
    cu_seqlens_k: torch.Tensor | None = None
    max_seqlen_q: int = 0
    max_seqlen_k: int = 0
    key_slots: torch.Tensor | None = None
    block_tables: torch.Tensor | None = None
    context_lens: torch.Tensor | None = None
    # CPU decode: (key slots [B, L], mask [B, 1, 1, L + 1] or None), built by the first layer.
    cpu_gather: tuple[torch.Tensor, torch.Tensor | None] | None = field(default=None, repr=False)
    # CPU decode: each layer's new (k, v), stored after the last layer (see `store_fresh`).
    fresh_kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list, repr=False)

    def decode_gather(
        self, block_size: int, always_mask: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every sequence's cached key slots (all but the new token's) padded to the longest,
        and the mask that hides the padding from the cached keys and the new one after them
        (None when no row is padded, unless `always_mask`): computed once per step, shared
        by all layers."""
        if self.cpu_gather is None:
            assert self.block_tables is not None and self.context_lens is not None
            cached = self.context_lens.long() - 1
            batch, longest = len(cached), int(cached.max())
            pos = torch.arange(longest, device=cached.device)
            tables = self.block_tables.long()[:, pos // block_size]
            slots = tables * block_size + pos % block_size
            mask = None
            if always_mask or bool((cached < longest).any()):
                mask = torch.ones(batch, 1, 1, longest + 1, dtype=torch.bool, device=cached.device)
                mask[:, 0, 0, :longest] = pos[None, :] < cached[:, None]
            self.cpu_gather = (slots, mask)
        return self.cpu_gather

    def store_fresh(self, kv: KVCache) -> None:
        """Write the new keys and values a CPU decode pass held back, every layer in one op:
        the layers themselves only read the cache, so the pass compiles to a pure graph."""
        if self.fresh_kv:
            fresh = torch.stack([torch.stack(pair) for pair in self.fresh_kv])  # [L, 2, B, H, D]
            kv.slots_view().index_copy_(2, self.slot_mapping, fresh.to(kv.data.dtype))
            self.fresh_kv.clear()


class KVCache:
    """Paged key/value storage for every layer of one model.

    One tensor [layers, 2, num_blocks, block_size, kv_heads, head_dim] so that the
    whole cache is a single allocation whose size is known up front.
    """

    def __init__(
        self,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.data = torch.zeros(
            (num_layers, 2, num_blocks, block_size, num_kv_heads, head_dim),
            dtype=dtype,
            device=device,
        )

    @staticmethod
    def bytes_per_block(
        num_layers: int, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype
    ) -> int:
        element = torch.empty((), dtype=dtype).element_size()
        return 2 * num_layers * block_size * num_kv_heads * head_dim * element

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index, 0], self.data[index, 1]

    def slots_view(self) -> torch.Tensor:
        """The cache as [layers, 2, slots, kv_heads, head_dim]."""
        layers, _, blocks, size, heads, dim = self.data.shape
        return self.data.view(layers, 2, blocks * size, heads, dim)


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    scale: float,
) -> torch.Tensor:
    """Store the new k/v in the cache, then attend. q [T, Hq, D], k/v [T, Hkv, D].
    A CPU decode pass holds the store back until after its last layer (`store_fresh`)."""
    if not meta.is_prefill and q.device.type == "cpu":
        meta.fresh_kv.append((k, v))
        return _cpu_decode(q, k, v, k_cache, v_cache, meta, scale)
    kernels.store_kv(k, v, k_cache, v_cache, meta.slot_mapping)
    if not meta.is_prefill:
        return kernels.decode_attention(
            q, k_cache, v_cache, meta.block_tables, meta.context_lens, scale
        )
    if meta.key_slots is not None:
        heads, dim = k_cache.shape[-2:]
        k = k_cache.view(-1, heads, dim).index_select(0, meta.key_slots).to(q.dtype)
        v = v_cache.view(-1, heads, dim).index_select(0, meta.key_slots).to(q.dtype)
    else:
        # The keys and values as the cache holds them (rounded, where it holds fewer bits
        # than the model computes in), as every later pass reads them: a prompt gets the
        # same logits whether it is prefilled whole, in chunks or after a cached prefix.
        k, v = k.to(k_cache.dtype).to(q.dtype), v.to(v_cache.dtype).to(q.dtype)
    return kernels.prefill_attention(
        q,
        k,
        v,
        meta.cu_seqlens_q,
        meta.cu_seqlens_k,
        meta.max_seqlen_q,
        meta.max_seqlen_k,
        scale,
    )


def _cpu_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    scale: float,
) -> torch.Tensor:
    """The whole batch in one attention call over its cached keys and the new one, so the
    number of kernels per layer does not grow with the number of sequences: ours, reading
    the cache in place, or torch's over the keys gathered out of it."""
    if reads_cache_in_place(k_cache):
        return torch.ops.neuron_cpu.decode_attention(
            q, k, v, k_cache, v_cache, meta.block_tables, meta.context_lens, scale
        )
    block_size, heads, dim = k_cache.shape[1:]
    slots, mask = meta.decode_gather(block_size)
    batch, longest = slots.shape
    flat = slots.view(-1)
    # Any cache type (a test may hold fp16 where our kernel cannot run): widened here.
    cached_k = k_cache.view(-1, heads, dim).index_select(0, flat).to(q.dtype)
    cached_v = v_cache.view(-1, heads, dim).index_select(0, flat).to(q.dtype)
    cached_k = cached_k.view(batch, longest, heads, dim)
    cached_v = cached_v.view(batch, longest, heads, dim)
    keys = torch.cat((cached_k, k.unsqueeze(1)), dim=1)
    values = torch.cat((cached_v, v.unsqueeze(1)), dim=1)
    out = F.scaled_dot_product_attention(
        q.unsqueeze(2),
        keys.transpose(1, 2),
        values.transpose(1, 2),
        attn_mask=mask,
        scale=scale,
        enable_gqa=True,
    )
    return out.squeeze(2)


def reads_cache_in_place(k_cache: torch.Tensor) -> bool:
    """Whether a CPU decode pass attends with our kernel (neuron_kernels/cpu/decode_attention.cpp),
    which needs no gathered keys (`AttentionMetadata.decode_gather`)."""
    return (
        k_cache.dtype in (torch.float32, torch.float16)
        and k_cache.shape[-1] % 8 == 0
        and _our_kernels()
    )


def kv_cache_dtype(dtype: torch.dtype, device: torch.device | str, head_dim: int) -> torch.dtype:
    """The KV cache's element type for a model computing in `dtype`: fp16 for an fp32 model
    on a CPU where our decode attention reads the cache (a decode step reads half the
    bytes, as with llama.cpp's fp16 cache; keys and values are rounded once, on storing),
    else the model's own."""
    ours = torch.device(device).type == "cpu" and head_dim % 8 == 0 and cpu_kernels()
    return torch.float16 if ours and dtype == torch.float32 else dtype


@torch.compiler.assume_constant_result
def _our_kernels() -> bool:
    return cpu_kernels()  # a constant to a compiled step: it does not trace the build
