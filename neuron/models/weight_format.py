"""How a CPU model holds its matmul weights: the one place that picks a weight format.

`cpu_quantization` chooses:
- "none": dense, in the model's dtype (the GPU path never gets anything else);
- "int8": every layer matmul as int8 per output channel;
- "int4": every layer matmul as 4-bit per run of 32, from the GGUF's own 4-bit codes
  where it has them (Q4_0, Q4_1, Q4_K: exact), min/max-quantised otherwise;
- "fp16": every layer matmul as fp16 through fbgemm (x86 builds of torch only): the
  dequantised values within fp16's rounding, with fp32 activations, so the closest to
  the fp32 model, at 2 bytes per weight (3x a 4-bit GGUF's size); on CPUs without
  native bf16 (AVX2) also the fastest for batches (see neuron/models/quant_linear.py);
- "auto": what the file holds, packed without losing what it stores: 4-bit GGUF
  tensors as int4, other quantised ones as int8, float tensors left dense (memory
  stays near the file's size, whatever the model's).
A mixture of experts' stacked expert weights are packed expert by expert (one packed
linear each; the router stays dense): a 4-bit GGUF's experts keep their own codes.
Whenever something is packed, the vocabulary matrix becomes `Int8Rows` (full-resolution
fp32 logits), and norms, the residual stream, attention and the KV cache stay fp32:
only the int8 kernel's inputs, and torch's int4 kernel's where ours cannot run, are bf16
(measured on SmolLM2, a bf16 KV cache cost 0.4% of top-1 agreement with the fp32 model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from gguf import GGMLQuantizationType as Q

from neuron.models.errors import ModelLoadError
from neuron.models.gguf_codes import GroupCodes
from neuron.models.llama import LlamaForCausalLM
from neuron.models.lm_head import Int8Rows
from neuron.models.moe import ExpertLinears
from neuron.models.quant_linear import (
    Fp16Linear,
    Int8Linear,
    PackedLinear,
    fbgemm_available,
    int4_linear,
    quantize_groups,
)

CHOICES = ("auto", "int4", "int8", "fp16", "none")
DENSE_TYPES = frozenset({Q.F32, Q.F16, Q.BF16})


@dataclass
class SourceWeights:
    """What the file said about its tensors (by transformers name): GGUF storage types
    and the 4-bit codes read from it. Empty for a Hugging Face folder."""

    types: dict[str, Q] = field(default_factory=dict)
    codes: dict[str, GroupCodes] = field(default_factory=dict)

    def quantized(self, name: str) -> bool:
        return name in self.types and self.types[name] not in DENSE_TYPES


def _format_for(choice: str, names: list[str], source: SourceWeights) -> str:
    """ "int4", "int8", "fp16" or "dense" for one fused weight made of `names`."""
    if choice != "auto":
        return choice
    if all(n in source.codes for n in names):
        return "int4"
    return "int8" if all(source.quantized(n) for n in names) else "dense"


@torch.no_grad()  # plain tensors, not inference ones: the model stays usable anywhere
def pack(model: LlamaForCausalLM, choice: str, source: SourceWeights) -> str:
    """Swap the model's weights for packed ones as `choice` says; return the format's name
    (what /models reports), e.g. "int4 layers, int8 vocabulary" or "float32"."""
    layers: set[str] = set()
    if choice == "fp16" and not fbgemm_available():
        raise ModelLoadError("unsupported", "fp16 weights need fbgemm, in x86 builds of torch")
    if choice != "none":
        for module, attr, names in model.packed_slots():
            kind = _format_for(choice, names, source)
            if kind == "dense":
                continue
            dense = getattr(module, attr)
            delattr(module, attr)  # a parameter slot cannot take a module
            codes = None
            if kind == "int4" and all(n in source.codes for n in names):
                codes = GroupCodes.cat([source.codes[n] for n in names])
            if dense.dim() == 3:  # stacked experts: one packed linear each
                experts = range(dense.shape[0])
                packed = ExpertLinears(
                    [_packed(kind, dense[e], codes.expert(e) if codes else None) for e in experts]
                )
            else:
                packed = _packed(kind, dense, codes)
            setattr(module, attr, packed)
            layers.add(kind)
    head = "lm_head.weight" if "lm_head.weight" in source.types else "model.embed_tokens.weight"
    dense = str(model.act_dtype).removeprefix("torch.")
    if not layers and not (choice == "auto" and source.quantized(head)):
        return dense
    _pack_vocabulary(model)
    return f"{'+'.join(sorted(layers)) or dense} layers, int8 vocabulary"


def _packed(kind: str, dense: torch.Tensor, codes: GroupCodes | None) -> PackedLinear:
    """One matmul weight [N, K] as `kind`, from the file's 4-bit codes where given."""
    if kind == "int4":
        return int4_linear(codes if codes is not None else quantize_groups(dense))
    if kind == "fp16":
        return Fp16Linear(dense)
    return Int8Linear(dense)


def _pack_vocabulary(model: LlamaForCausalLM) -> None:
    embed, head = model.embed_tokens, model.lm_head
    del model.lm_head, model.embed_tokens
    model.lm_head = Int8Rows(head)
    model.embed_tokens = model.lm_head if head is embed else Int8Rows(embed)
