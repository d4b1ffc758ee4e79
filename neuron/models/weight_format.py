"""How a model holds its matmul weights: the one place that picks a weight format.

On CUDA (`gpu_quantization`): "auto" keeps every quantised tensor of a GGUF (and the
layers of an AWQ or GPTQ checkpoint) packed as int4 or int8 codes with the file's own
group scales (neuron_kernels.PackedWeight, run by our Triton matmul), the vocabulary
included; a fused matmul with a float tensor among its parts stays dense (logged, and
named in the format /models reports). "none" dequantises everything to the model's dtype.

On CPU, `cpu_quantization` chooses:
- "none": dense, in the model's dtype;
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

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from gguf import GGMLQuantizationType as Q
from torch import nn

from neuron.models.errors import ModelLoadError
from neuron.models.gguf_codes import GroupCodes
from neuron.models.llama import LlamaForCausalLM
from neuron.models.lm_head import Int8Rows
from neuron.models.moe import ExpertLinears
from neuron.models.quant_linear import (
    Fp16Linear,
    GroupQuantLinear,
    Int8Linear,
    PackedLinear,
    fbgemm_available,
    int4_linear,
    quantize_groups,
)
from neuron.models.rope import Rotary
from neuron_kernels import PackedWeight

log = logging.getLogger(__name__)

CHOICES = ("auto", "int4", "int8", "fp16", "none")
GPU_CHOICES = ("auto", "none")
VOCABULARY = ("model.embed_tokens.weight", "lm_head.weight")
DENSE_TYPES = frozenset({Q.F32, Q.F16, Q.BF16})


@dataclass
class SourceWeights:
    """What the file said about its tensors (by transformers name): GGUF storage types
    and the 4-bit codes read from it (CPU); for the GPU form, the names the reader is to
    hand over packed (`keep`) and those it did (`packed`)."""

    types: dict[str, Q] = field(default_factory=dict)
    codes: dict[str, GroupCodes] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()
    packed: dict[str, PackedWeight] = field(default_factory=dict)

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


def gpu_plan(model: LlamaForCausalLM, packable: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """(names kept packed on the GPU, names of the matmuls that fall back to dense): a fused
    matmul is packed only when all its tensors are, the vocabulary matrices each alone."""
    packable = set(packable)
    keep: set[str] = {n for n in VOCABULARY if n in packable}
    fallback: list[str] = []
    for _module, _attr, names in model.packed_slots():
        if all(n in packable for n in names):
            keep.update(names)
        elif any(n in packable for n in names):
            fallback.append(names[0].removesuffix(".weight"))
    if fallback:
        log.warning(
            "%d matmuls mix quantised and float tensors and are held dense, e.g. %s",
            len(fallback),
            fallback[0],
        )
    return frozenset(keep), fallback


def _vocabulary_params(model: LlamaForCausalLM, keep: frozenset[str]) -> list[nn.Parameter]:
    slots = {"model.embed_tokens.weight": model.embed_tokens, "lm_head.weight": model.lm_head}
    if model.config.tie_word_embeddings and "model.embed_tokens.weight" in keep:
        return [model.embed_tokens]
    return [p for name, p in slots.items() if name in keep]


def materialize(model: LlamaForCausalLM, device: torch.device, keep: frozenset[str]) -> None:
    """Give a model built on the meta device real, empty storage on `device`, except for
    the weights that arrive packed: those stay meta until `pack_gpu` replaces them, so a
    load never holds a quantised model's dense weights."""
    stay = {id(getattr(m, a)) for m, a, names in model.packed_slots() if set(names) <= keep}
    stay.update(id(p) for p in _vocabulary_params(model, keep))
    made: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if id(param) in stay:
                continue
            if id(param) not in made:
                made[id(param)] = nn.Parameter(
                    torch.empty_like(param, device=device), requires_grad=False
                )
            setattr(module, name, made[id(param)])
    model.rotary = Rotary(model.config, model.act_dtype, device)
    model.device = device


@torch.no_grad()
def pack_gpu(model: LlamaForCausalLM, source: SourceWeights, fallback: list[str]) -> str:
    """Swap the meta slots `materialize` left for the packed weights the reader handed
    over (moved to the model's device); return the format's name for /models."""
    device, dtype = model.device, model.act_dtype
    take = lambda name: source.packed.pop(name).map_rows(lambda t: t.to(device))  # noqa: E731
    bits: set[str] = set()
    for module, attr, names in model.packed_slots():
        if all(n in source.packed for n in names):
            parts = [take(n) for n in names]
            delattr(module, attr)
            setattr(module, attr, GroupQuantLinear(parts, dtype))
            bits.update(f"int{p.bits}" for p in parts)
    vocabulary = str(dtype).removeprefix("torch.")
    tied = model.lm_head is model.embed_tokens
    if "model.embed_tokens.weight" in source.packed:
        embed = GroupQuantLinear([take("model.embed_tokens.weight")], dtype)
        vocabulary = f"int{embed.parts()[0].bits}"
        del model.embed_tokens
        model.embed_tokens = embed
        if tied:
            del model.lm_head
            model.lm_head = embed
    if "lm_head.weight" in source.packed:
        head = GroupQuantLinear([take("lm_head.weight")], dtype)
        vocabulary = f"int{head.parts()[0].bits}"
        del model.lm_head
        model.lm_head = head
    dense = str(dtype).removeprefix("torch.")
    if not bits and vocabulary == dense:
        return dense
    name = f"{'+'.join(sorted(bits)) or dense} layers, {vocabulary} vocabulary"
    if fallback:
        name += f"; {len(fallback)} mixed matmuls {dense}"
    return name
