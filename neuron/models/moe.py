"""The mixture-of-experts MLP (Qwen3-MoE, Mixtral), written out in plain torch.

A router scores every token against every expert; each token goes to its top-k experts,
whose SwiGLU outputs are summed with the router's weights (softmax over all experts, the
chosen ones renormalised to sum 1 where the model says so: Mixtral's softmax over the
top-k logits is the same thing). Each expert runs once per pass, on the rows routed to it
(the token-expert pairs sorted by expert), not on every token.

On CPU the experts run through `neuron::moe_experts`, an operator of ours that holds a key
to the block: the compiled decode graph (neuron/engine/cpu_compile.py) calls it as is, so
its data-dependent loop over the experts never has to be traced, and the experts may be
packed (neuron/models/weight_format.py: a `ExpertLinears` of int4 or int8 linears per
expert). On CUDA one fused Triton kernel per projection runs every expert at once
(neuron_kernels/fused_moe.py).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from neuron.models.config import ModelConfig
from neuron.models.quant_linear import PackedLinear, linear
from neuron_kernels.fused_moe import fused_moe

# Mixtral's checkpoint names → the Qwen3-MoE ones the block loads by.
_MIXTRAL_NAMES = (
    (re.compile(r"\.block_sparse_moe\.gate\."), ".mlp.gate."),
    (re.compile(r"\.block_sparse_moe\.experts\.(\d+)\.w1\."), r".mlp.experts.\1.gate_proj."),
    (re.compile(r"\.block_sparse_moe\.experts\.(\d+)\.w3\."), r".mlp.experts.\1.up_proj."),
    (re.compile(r"\.block_sparse_moe\.experts\.(\d+)\.w2\."), r".mlp.experts.\1.down_proj."),
)
# All experts in one tensor: transformers 5 in memory (`gate_up_proj` [E, 2I, H],
# `down_proj` [E, H, I]) and GGUF's `ffn_{gate,up,down}_exps` ([E, I, H], [E, H, I]).
_STACKED = re.compile(r"(.*\.mlp\.experts)\.(gate_up_proj|gate_proj|up_proj|down_proj)(\.weight)?")


class ExpertLinears(nn.Module):
    """One packed linear per expert, indexed like the [E, N, K] tensor it replaces."""

    def __init__(self, linears: list[PackedLinear]) -> None:
        super().__init__()
        self.experts = nn.ModuleList(linears)

    def __getitem__(self, expert: int) -> PackedLinear:
        return self.experts[expert]

    def __len__(self) -> int:
        return len(self.experts)


Experts = torch.Tensor | ExpertLinears


def route(logits: torch.Tensor, top_k: int, renormalise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(expert ids [T, k], fp32 weights [T, k]): softmax over all experts, then top-k."""
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    weights, ids = probs.topk(top_k, dim=-1)
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return ids, weights


def grouped_experts(
    x: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
    gate_up: Experts,
    down: Experts,
) -> torch.Tensor:
    """sum_j weights[t, j] * expert_{ids[t, j]}(x[t]), each expert once on its rows."""
    top_k = ids.shape[1]
    flat = ids.flatten()
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=len(gate_up)).tolist()
    tokens = order // top_k
    rows = x[tokens]
    out = torch.empty(rows.shape[0], x.shape[1], dtype=torch.float32, device=x.device)
    start = 0
    for expert, count in enumerate(counts):
        if count == 0:
            continue
        part = rows[start : start + count]
        gate, up = linear(part, gate_up[expert]).chunk(2, dim=-1)
        out[start : start + count] = linear(F.silu(gate) * up, down[expert])
        start += count
    out.mul_(weights.flatten()[order, None])
    summed = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    return summed.index_add_(0, tokens, out).to(x.dtype)


# The blocks the CPU operator runs, by key (the weights may be modules, which an
# operator cannot take), held weakly so that an unloaded model's experts are freed;
# registered through `torch.library.Library` for the same reason as neuron::fp16_linear
# (neuron/models/quant_linear.py).
_BLOCKS: dict[int, weakref.ref[MoEBlock]] = {}
_LIBRARY = torch.library.Library("neuron_moe", "DEF")
_LIBRARY.define("experts(Tensor x, Tensor ids, Tensor weights, int key) -> Tensor")


def _experts_cpu(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, key: int):
    block = _BLOCKS[key]()
    assert block is not None, "a freed MoE block was called"
    return grouped_experts(x, ids, weights, block.gate_up_weight, block.down_weight)


_LIBRARY.impl("experts", _experts_cpu, "CPU")


@torch.library.register_fake("neuron_moe::experts", lib=_LIBRARY)
def _(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, key: int) -> torch.Tensor:
    return torch.empty_like(x)


def _param(*shape: int, dtype: torch.dtype, device: torch.device) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, dtype=dtype, device=device), requires_grad=False)


class MoEBlock(nn.Module):
    """The routed MLP of one layer: router [E, H], gate/up [E, 2I, H], down [E, H, I]."""

    def __init__(self, config: ModelConfig, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        experts, hidden = config.num_experts, config.hidden_size
        self.inter = config.moe_intermediate_size
        self.top_k = config.num_experts_per_tok
        self.renormalise = config.norm_topk_prob
        kw = {"dtype": dtype, "device": device}
        self.router_weight = _param(experts, hidden, **kw)
        self.gate_up_weight: Experts = _param(experts, 2 * self.inter, hidden, **kw)
        self.down_weight: Experts = _param(experts, hidden, self.inter, **kw)
        self.key = id(self)
        _BLOCKS[self.key] = weakref.ref(self)
        weakref.finalize(self, _BLOCKS.pop, self.key, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, weights = route(F.linear(x, self.router_weight), self.top_k, self.renormalise)
        if x.is_cuda:
            return fused_moe(x, self.gate_up_weight, self.down_weight, ids, weights)
        return torch.ops.neuron_moe.experts(x, ids, weights, self.key)

    def packed_slots(self, prefix: str) -> Iterator[tuple[nn.Module, str, list[str]]]:
        """What a weight format may pack (see `LlamaForCausalLM.packed_slots`), by the
        stacked names a GGUF stores the experts under; the router stays dense."""
        yield (
            self,
            "gate_up_weight",
            [f"{prefix}experts.gate_proj.weight", f"{prefix}experts.up_proj.weight"],
        )
        yield self, "down_weight", [f"{prefix}experts.down_proj.weight"]

    def weight_slots(self, prefix: str) -> dict[str, torch.Tensor]:
        """Per-expert checkpoint names (Qwen3-MoE's) → views of the stacked weights."""
        inter = self.inter
        slots = {f"{prefix}gate.weight": self.router_weight}
        for e in range(self.router_weight.shape[0]):
            p = f"{prefix}experts.{e}."
            slots[f"{p}gate_proj.weight"] = self.gate_up_weight[e, :inter]
            slots[f"{p}up_proj.weight"] = self.gate_up_weight[e, inter:]
            slots[f"{p}down_proj.weight"] = self.down_weight[e]
        return slots


def expert_tensors(
    weights: Iterable[tuple[str, torch.Tensor]],
) -> Iterator[tuple[str, torch.Tensor]]:
    """Checkpoint tensors with every expert layout in Qwen3-MoE's per-expert names:
    Mixtral's `block_sparse_moe.experts.N.w1/w3/w2` renamed, stacked tensors split into
    one view per expert (a stacked gate/up is gate rows first). Others pass as they are."""
    for name, tensor in weights:
        for pattern, replacement in _MIXTRAL_NAMES:
            name = pattern.sub(replacement, name)
        match = _STACKED.fullmatch(name)
        if match is None:
            yield name, tensor
            continue
        prefix, part = match.group(1), match.group(2)
        for expert, weight in enumerate(tensor.unbind(0)):
            p = f"{prefix}.{expert}."
            if part == "gate_up_proj":
                gate, up = weight.chunk(2, dim=0)
                yield f"{p}gate_proj.weight", gate
                yield f"{p}up_proj.weight", up
            else:
                yield f"{p}{part}.weight", weight
