"""(b) The sampling kernel against torch's sort-based top-p (softmax, sort, cumsum, multinomial).

Both sample with temperature 0.8 and top-p 0.9 from a Llama-3-sized vocabulary at
batch 1 and 32; ours also honours per-row seeds with no host synchronisation.
"""

from __future__ import annotations

import functools

import torch

import neuron_kernels as kernels
from bench.gpu_common import Setup, summary, time_call
from neuron_kernels.sampling import SamplingBatch, SamplingRow


def torch_top_p(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    ordered, order = probs.sort(dim=-1, descending=True)
    outside = ordered.cumsum(dim=-1) - ordered > top_p
    ordered = ordered.masked_fill(outside, 0.0)
    return order.gather(1, torch.multinomial(ordered, 1)).squeeze(1)


def run(s: Setup) -> list[dict]:
    vocab = 1000 if s.dry_run else 128_256
    rows = []
    for batch in (1, 4) if s.dry_run else (1, 32):
        logits = torch.randn(batch, vocab, device=s.device).mul_(3).to(s.dtype)
        params = [SamplingRow(temperature=0.8, top_p=0.9, seed=i) for i in range(batch)]
        sampling = SamplingBatch.from_rows(params, device=s.device)
        iters = 3 if s.dry_run else 50
        ours = time_call(s, functools.partial(kernels.sample, logits, sampling), iters)
        theirs = time_call(s, functools.partial(torch_top_p, logits, 0.8, 0.9), iters)
        rows.append(
            {
                "batch": batch,
                "vocab": vocab,
                "ours_us": summary(ours, 1e6),
                "torch_sort_top_p_us": summary(theirs, 1e6),
            }
        )
        print(
            f"sampling batch {batch:>3}: ours {rows[-1]['ours_us']['median']:9.1f} us, "
            f"torch sort top-p {rows[-1]['torch_sort_top_p_us']['median']:9.1f} us",
            flush=True,
        )
    return rows
