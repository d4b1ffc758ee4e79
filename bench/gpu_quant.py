"""(d) Packed int4 weights on the GPU: the int4 matrix-vector kernel's achieved bandwidth
against the card's peak, and decode tokens/s of models shaped like Qwen2.5-0.5B and
Llama-3-8B with random int4 weights (made on the device, every layer and the vocabulary
as a Q4 GGUF would hold them) against the same shapes in bf16, through our Engine.

A decode step reads every weight once, so at batch 1 tokens/s follow the bytes held:
4.5-5 bits per weight against 16.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from bench.gpu_common import Setup, summary, time_call
from bench.gpu_e2e import SHAPES, ours_rate, prompts, random_model, shape
from neuron.engine import Engine
from neuron.models.llama import LlamaForCausalLM
from neuron.models.quant_linear import GroupQuantLinear
from neuron_kernels import PackedWeight, quant_matmul

GROUP = 32


def random_int4(n: int, k: int, device: torch.device, gen: torch.Generator) -> PackedWeight:
    """A random [n, k] int4 weight with an fp16 scale and offset per group of 32 (Q4_1's
    layout), centred: w = (code - 7.5) * scale."""
    codes = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device=device, generator=gen)
    scale = torch.full((n, k // GROUP), 0.004, dtype=torch.float16, device=device)
    return PackedWeight(4, codes, scale, -7.5 * scale, GROUP, k)


@torch.no_grad()
def to_int4(model: LlamaForCausalLM) -> None:
    """Swap every matmul weight and the vocabulary for random int4 ones, freeing the dense."""
    gen = torch.Generator(device=model.device).manual_seed(1)
    for module, attr, _names in model.packed_slots():
        n, k = getattr(module, attr).shape
        delattr(module, attr)
        setattr(
            module, attr, GroupQuantLinear([random_int4(n, k, model.device, gen)], model.act_dtype)
        )
    tied = model.lm_head is model.embed_tokens
    vocab, hidden = model.embed_tokens.shape
    embed = GroupQuantLinear([random_int4(vocab, hidden, model.device, gen)], model.act_dtype)
    del model.embed_tokens, model.lm_head
    model.embed_tokens = embed
    model.lm_head = (
        embed
        if tied
        else GroupQuantLinear([random_int4(vocab, hidden, model.device, gen)], model.act_dtype)
    )


def matvec_bandwidth(s: Setup, peak: float) -> list[dict[str, Any]]:
    """Bytes moved / time of one decode-row product per Llama-3-8B matmul shape."""
    hf = shape("llama-3-8b", s)
    h, inter, v = hf["hidden_size"], hf["intermediate_size"], hf["vocab_size"]
    kv = hf["num_key_value_heads"] * h // hf["num_attention_heads"]
    gen = torch.Generator(device=s.device).manual_seed(0)
    rows = []
    for label, n, k in (("qkv", h + 2 * kv, h), ("o", h, h), ("gate_up", 2 * inter, h),
                        ("down", h, inter), ("lm_head", v, h)):  # fmt: skip
        weight = random_int4(n, k, s.device, gen)
        x = torch.randn(1, k, dtype=s.dtype, device=s.device)
        seconds = time_call(s, lambda x=x, w=weight: quant_matmul(x, w), 5 if s.dry_run else 50)
        moved = weight.nbytes + x.numel() * x.element_size() * (1 + n / k)
        rate = moved / statistics.median(seconds)
        rows.append({"matmul": label, "n": n, "k": k, "us": summary(seconds, 1e6),
                     "GBps": rate / 1e9, "fraction_of_peak": rate / peak})  # fmt: skip
        print(f"int4 matvec {label:<8} [{n:>6} x {k:>5}]: {statistics.median(seconds) * 1e6:8.1f}"
              f" us, {rate / 1e9:7.1f} GB/s ({100 * rate / peak:5.1f}% of peak)", flush=True)  # fmt: skip
    return rows


def decode_rates(s: Setup) -> list[dict[str, Any]]:
    rows = []
    prompt_len, new_tokens = (16, 8) if s.dry_run else (128, 64)
    for name in SHAPES:
        rates: dict[str, list[float]] = {}
        held: dict[str, int] = {}
        for form in ("dense", "int4"):
            loaded = random_model(shape(name, s), s.dtype, s.device)
            if form == "int4":
                to_int4(loaded.model)
                if s.device.type == "cuda":
                    torch.cuda.empty_cache()
            held[form] = loaded.model.nbytes
            engine = Engine(loaded, num_blocks=-(-(prompt_len + new_tokens) // 16) + 16,
                            block_size=16, max_batch_size=1, max_prefill_tokens=4096)  # fmt: skip
            ids = prompts(1, prompt_len, loaded.config.vocab_size)
            ours_rate(engine, ids, 3)  # warm-up: compiles, captures the graph
            rates[form] = [ours_rate(engine, ids, new_tokens) for _ in range(s.repeats)]
            del engine, loaded
            if s.device.type == "cuda":
                torch.cuda.empty_cache()
        dense, int4 = (statistics.median(rates[f]) for f in ("dense", "int4"))
        label = str(s.dtype).removeprefix("torch.")  # bf16 on the GPU, fp32 on a dry run
        rows.append({"model": name, "batch": 1, "dense_dtype": label,
                     "dense_tok_s": summary(rates["dense"]), "int4_tok_s": summary(rates["int4"]),
                     "speedup": int4 / dense, "dense_weight_bytes": held["dense"],
                     "int4_weight_bytes": held["int4"]})  # fmt: skip
        print(f"int4 decode {name:<13} batch 1: int4 {int4:9.1f} tok/s, {label} {dense:9.1f} "
              f"tok/s (x{int4 / dense:.2f}; weights {held['int4'] / 2**30:.2f} against "
              f"{held['dense'] / 2**30:.2f} GiB)", flush=True)  # fmt: skip
    return rows


def run(s: Setup, peak: float) -> dict[str, Any]:
    return {"matvec": matvec_bandwidth(s, peak), "decode": decode_rates(s)}
