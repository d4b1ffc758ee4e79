"""(d) Causal prefill attention: our launch settings against the earlier ones, and torch SDPA.

Llama-3-8B heads (32 query, 8 KV, dim 128) over one prompt of 1k and of 8k tokens.
"Earlier" is the same kernel with the settings it had before per-head-size tuning
(64 x 64 tiles, 4 warps, 3 stages), which spilled registers on sm_80 at head_dim 128;
it runs on CUDA only (the dry run has the torch reference, no Triton).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
import triton

import neuron_kernels as kernels
from bench.gpu_common import Setup, summary, time_call
from neuron_kernels.attention_prefill import prefill_launches

EARLIER = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 3}


def earlier_launch(args: tuple, hq: int):
    """The planned launch, re-cut with the earlier settings."""
    _, (launch,) = prefill_launches(*args)
    tokens = args[0].shape[0]
    return dataclasses.replace(
        launch,
        grid=(triton.cdiv(tokens, EARLIER["block_m"]), 1, hq),
        constexprs={**launch.constexprs, "BLOCK_M": EARLIER["block_m"],
                    "BLOCK_N": EARLIER["block_n"]},
        num_warps=EARLIER["num_warps"],
        num_stages=EARLIER["num_stages"],
    )  # fmt: skip


def one_case(s: Setup, tokens: int, heads: tuple[int, int, int]) -> dict:
    hq, hkv, dim = heads
    gen = torch.Generator(device=s.device).manual_seed(0)
    q, k, v = (
        torch.randn(tokens, h, dim, generator=gen, device=s.device, dtype=s.dtype)
        for h in (hq, hkv, hkv)
    )
    cu = torch.tensor([0, tokens], dtype=torch.int32, device=s.device)
    args = (q, k, v, cu, cu, tokens, tokens, dim**-0.5)
    iters = 3 if s.dry_run else 20
    ours = time_call(s, lambda: kernels.prefill_attention(*args), iters)
    earlier = None
    if s.device.type == "cuda":
        launch = earlier_launch(args, hq)
        earlier = summary(time_call(s, launch.run, iters), 1e6)
    qs, ks, vs = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
    sdpa = time_call(
        s,
        lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=True),
        iters,
    )
    return {
        "tokens": tokens,
        "ours_us": summary(ours, 1e6),
        "earlier_settings_us": earlier,
        "sdpa_us": summary(sdpa, 1e6),
    }


def run(s: Setup) -> list[dict]:
    lengths, heads = ([64, 256], (4, 2, 32)) if s.dry_run else ([1024, 8192], (32, 8, 128))
    rows = []
    for tokens in lengths:
        row = one_case(s, tokens, heads)
        rows.append(row)
        earlier = row["earlier_settings_us"]
        print(
            f"prefill {tokens:>5} tokens: ours {row['ours_us']['median']:9.1f} us, earlier "
            f"settings {'–' if earlier is None else format(earlier['median'], '9.1f')} us, "
            f"sdpa {row['sdpa_us']['median']:9.1f} us",
            flush=True,
        )
    return rows
