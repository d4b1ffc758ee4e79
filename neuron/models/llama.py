"""The llama-family decoder (llama, mistral, qwen2, qwen3), written out in plain torch.

One flat batch of tokens goes through each pass: `input_ids [T]` with their
`positions [T]`; how those tokens split into sequences and where their keys
live is the `AttentionMetadata`'s business, so the layers themselves never see
padding or a batch dimension. Q/K/V and gate/up are single fused matmuls (the
separate checkpoint tensors are copied into slices at load), which halves the
number of small ops per layer, the main cost of a small model's decode step. For the
same reason the layers call their parts through `.forward`: nn.Module's call machinery
(hooks, which nothing here uses) cost 7% of a CPU decode step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from neuron.models.attention import AttentionMetadata, KVCache, paged_attention
from neuron.models.config import ModelConfig
from neuron.models.errors import ModelLoadError
from neuron.models.lm_head import Int8Rows
from neuron.models.moe import MoEBlock, expert_tensors
from neuron.models.quant_linear import linear
from neuron.models.rope import Rotary, apply_rope_, rope_inv_freq


def _weight(*shape: int, dtype: torch.dtype, device: torch.device) -> nn.Parameter:
    # Uninitialised on purpose: every weight is overwritten by the checkpoint.
    return nn.Parameter(torch.empty(shape, dtype=dtype, device=device), requires_grad=False)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.eps = eps
        self.weight = _weight(dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)  # one kernel
        # Normalise in fp32, as transformers does, so bf16 models match it.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        c = config
        self.num_heads, self.num_kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = c.head_dim
        self.q_size = c.num_attention_heads * c.head_dim
        self.kv_size = c.num_key_value_heads * c.head_dim
        self.scale = c.head_dim**-0.5
        self.act_dtype = dtype
        kw = {"dtype": dtype, "device": device}
        self.qkv_weight = _weight(self.q_size + 2 * self.kv_size, c.hidden_size, **kw)
        self.qkv_bias = _weight(self.q_size + 2 * self.kv_size, **kw) if c.attention_bias else None
        self.o_weight = _weight(c.hidden_size, self.q_size, **kw)
        self.o_bias = _weight(c.hidden_size, **kw) if c.o_proj_bias else None
        self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps, **kw) if c.qk_norm else None
        self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps, **kw) if c.qk_norm else None

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
    ) -> torch.Tensor:
        # Packed linears answer in bf16 or fp32; attention runs in the model's dtype (the
        # cache may hold fewer bits: `kv_cache_dtype`).
        qkv = linear(x, self.qkv_weight, self.qkv_bias).to(self.act_dtype)
        heads, qk_size = (self.num_heads, self.num_kv_heads), self.q_size + self.kv_size
        v = qkv[:, qk_size:].view(-1, self.num_kv_heads, self.head_dim)
        qk = qkv[:, :qk_size].view(-1, sum(heads), self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = qk.split(heads, dim=1)
            qk = torch.cat((self.q_norm.forward(q), self.k_norm.forward(k)), dim=1)
        # Queries and keys rotate as one tensor, in place: half the small ops of each apart.
        q, k = apply_rope_(qk, rope).split(heads, dim=1)
        out = paged_attention(q, k, v, k_cache, v_cache, meta, self.scale)
        return linear(out.reshape(-1, self.q_size), self.o_weight, self.o_bias)

    def weight_slots(self, prefix: str) -> dict[str, torch.Tensor]:
        q, kv = self.q_size, self.kv_size
        slots = {
            f"{prefix}q_proj.weight": self.qkv_weight[:q],
            f"{prefix}k_proj.weight": self.qkv_weight[q : q + kv],
            f"{prefix}v_proj.weight": self.qkv_weight[q + kv :],
            f"{prefix}o_proj.weight": self.o_weight,
        }
        if self.qkv_bias is not None:
            slots[f"{prefix}q_proj.bias"] = self.qkv_bias[:q]
            slots[f"{prefix}k_proj.bias"] = self.qkv_bias[q : q + kv]
            slots[f"{prefix}v_proj.bias"] = self.qkv_bias[q + kv :]
        if self.o_bias is not None:
            slots[f"{prefix}o_proj.bias"] = self.o_bias
        if self.q_norm is not None and self.k_norm is not None:
            slots[f"{prefix}q_norm.weight"] = self.q_norm.weight
            slots[f"{prefix}k_norm.weight"] = self.k_norm.weight
        return slots


class MLP(nn.Module):
    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.inter = config.intermediate_size
        self.gate_up_weight = _weight(
            2 * self.inter, config.hidden_size, dtype=dtype, device=device
        )
        self.down_weight = _weight(config.hidden_size, self.inter, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = linear(x, self.gate_up_weight).chunk(2, dim=-1)
        return linear(F.silu(gate).mul_(up), self.down_weight)

    def weight_slots(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}gate_proj.weight": self.gate_up_weight[: self.inter],
            f"{prefix}up_proj.weight": self.gate_up_weight[self.inter :],
            f"{prefix}down_proj.weight": self.down_weight,
        }


class DecoderLayer(nn.Module):
    def __init__(
        self, config: ModelConfig, dtype: torch.dtype, device: torch.device, index: int
    ) -> None:
        super().__init__()
        self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype, device)
        self.attn = Attention(config, dtype, device)
        self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype, device)
        routed = index in config.moe_layers
        self.mlp = (MoEBlock if routed else MLP)(config, dtype, device)

    def forward(self, x, rope, meta, k_cache, v_cache) -> torch.Tensor:
        """x is the residual stream, updated in place (no new [T, H] tensor per add)."""
        x.add_(self.attn.forward(self.input_norm.forward(x), rope, meta, k_cache, v_cache))
        return x.add_(self.mlp.forward(self.post_attn_norm.forward(x)))

    def weight_slots(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}input_layernorm.weight": self.input_norm.weight,
            f"{prefix}post_attention_layernorm.weight": self.post_attn_norm.weight,
            **self.attn.weight_slots(f"{prefix}self_attn."),
            **self.mlp.weight_slots(f"{prefix}mlp."),
        }


class LlamaForCausalLM(nn.Module):
    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device | str) -> None:
        super().__init__()
        device = torch.device(device)
        self.config = config
        kw = {"dtype": dtype, "device": device}
        self.embed_tokens = _weight(config.vocab_size, config.hidden_size, **kw)
        self.layers = nn.ModuleList(
            DecoderLayer(config, dtype, device, i) for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, **kw)
        self.lm_head = (
            self.embed_tokens
            if config.tie_word_embeddings
            else _weight(config.vocab_size, config.hidden_size, **kw)
        )
        self.rotary = Rotary(config, dtype, device)
        # A sequence-classification head [labels, H] (neuron/models/classifier.py), or None.
        self.classifier: torch.Tensor | None = None
        # What attention and the KV cache compute in (the packed linears answer in bf16).
        self.act_dtype = dtype
        self.device = device

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv: KVCache,
    ) -> torch.Tensor:
        """Hidden states [T, H] after the final norm, for every input token."""
        hidden = self.hidden_states(input_ids, positions, meta, kv)
        meta.store_fresh(kv)
        return hidden

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv: KVCache,
    ) -> torch.Tensor:
        """The layers and the final norm; a CPU decode pass only reads the cache here."""
        if not isinstance(self.embed_tokens, torch.Tensor):  # packed rows (Int8Rows, …)
            x = self.embed_tokens.embed(input_ids)
        else:
            x = F.embedding(input_ids, self.embed_tokens)
        rope = self.rotary(positions)
        for index, layer in enumerate(self.layers):
            k_cache, v_cache = kv.layer(index)
            x = layer.forward(x, rope, meta, k_cache, v_cache)
        return self.norm.forward(x)

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [N, V] in fp32 for the rows that need sampling."""
        if isinstance(self.lm_head, Int8Rows):
            return self.lm_head(hidden)
        return linear(hidden, self.lm_head).float()

    @torch.inference_mode()
    def head_rows(self, token_ids: list[int]) -> torch.Tensor:
        """The LM head's rows of these tokens, fp32 [len, H]: their logits without the
        whole vocabulary's (a yes/no reranker's two scores)."""
        ids = torch.tensor(token_ids, device=self.device)
        if isinstance(self.lm_head, Int8Rows):
            return self.lm_head.embed(ids)
        return self.lm_head.index_select(0, ids).float()

    def packed_slots(self) -> Iterator[tuple[nn.Module, str, list[str]]]:
        """(module, attribute, checkpoint names in row order) of every layer matmul weight:
        what a weight format may swap for a packed linear."""
        for index, layer in enumerate(self.layers):
            p = f"model.layers.{index}."
            attn = [f"{p}self_attn.{x}_proj.weight" for x in "qkv"]
            yield layer.attn, "qkv_weight", attn
            yield layer.attn, "o_weight", [f"{p}self_attn.o_proj.weight"]
            if isinstance(layer.mlp, MoEBlock):
                yield from layer.mlp.packed_slots(f"{p}mlp.")
                continue
            yield (
                layer.mlp,
                "gate_up_weight",
                [f"{p}mlp.gate_proj.weight", f"{p}mlp.up_proj.weight"],
            )
            yield layer.mlp, "down_weight", [f"{p}mlp.down_proj.weight"]

    def weight_slots(self) -> dict[str, torch.Tensor]:
        """Every checkpoint tensor name (transformers naming) → the tensor it fills."""
        slots = {
            "model.embed_tokens.weight": self.embed_tokens,
            "model.norm.weight": self.norm.weight,
        }
        if not self.config.tie_word_embeddings:
            slots["lm_head.weight"] = self.lm_head
        for index, layer in enumerate(self.layers):
            slots.update(layer.weight_slots(f"model.layers.{index}."))
        return slots

    @torch.inference_mode()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy checkpoint tensors into place; a missing, unknown or misshapen one is an error."""
        slots = self.weight_slots()
        missing = set(slots)
        for name, tensor in expert_tensors(weights):
            if name == "rope_freqs.weight":
                # llama3-style scaling as GGUF stores it: per-frequency divisors.
                base = rope_inv_freq(self.config).to(tensor.device)
                self.rotary.rebuild((base / tensor.float()).to(self.device))
                continue
            if name.endswith("rotary_emb.inv_freq") or (
                name == "lm_head.weight" and self.config.tie_word_embeddings
            ):
                continue
            slot = slots.get(name)
            if slot is None:
                raise ModelLoadError("invalid", f"unexpected tensor {name!r} in the checkpoint")
            if tuple(slot.shape) != tuple(tensor.shape):
                raise ModelLoadError(
                    "invalid",
                    f"tensor {name!r} has shape {tuple(tensor.shape)}, "
                    f"expected {tuple(slot.shape)}",
                )
            slot.copy_(tensor)
            missing.discard(name)
        if missing:
            raise ModelLoadError(
                "invalid", f"checkpoint lacks {len(missing)} tensors, e.g. {sorted(missing)[0]!r}"
            )

    @property
    def nbytes(self) -> int:
        """Bytes of weights held (a tied embedding counted once, int8 copies and the packed
        weights that are not tensors (fbgemm's) included)."""
        tensors = [*self.parameters(), *self.buffers()]
        opaque = sum(getattr(m, "opaque_nbytes", 0) for m in self.modules())
        return sum(t.numel() * t.element_size() for t in tensors) + opaque
