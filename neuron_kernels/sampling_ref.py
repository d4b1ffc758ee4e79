"""Torch reference sampler: the CPU serving path and the truth for the Triton one.

Order per row: penalties -> temperature (0 = greedy argmax) -> top-k -> top-p
(over the top-k survivors) -> min-p -> exponential race.  Cut-offs keep ties:
top-k keeps every logit >= the k-th largest, top-p keeps every probability >=
the one whose cumulative mass first reaches top_p."""

from __future__ import annotations

import torch

from neuron_kernels.sampling import EXP_MIN, SamplingBatch, exponentials, row_keys


def apply_penalties_ref(logits: torch.Tensor, batch: SamplingBatch) -> None:
    """In place on fp32 [B, V]: repetition on every seen id, then frequency and
    presence from the output counts (only the listed unique ids are touched)."""
    ids = batch.penalty_ids
    if ids.numel() == 0:
        return
    valid = ids >= 0
    rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1).expand_as(ids)[valid]
    cols = ids[valid]
    counts = batch.output_counts[valid].float()
    vals = logits[rows, cols]
    rep = batch.columns["repetition_penalty"][rows]
    vals = torch.where(vals > 0, vals / rep, vals * rep)
    vals = vals - batch.columns["frequency_penalty"][rows] * counts
    vals = vals - batch.columns["presence_penalty"][rows] * (counts > 0).float()
    logits[rows, cols] = vals


def _top_k_mask(x: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    vocab = x.shape[1]
    on = (top_k > 0) & (top_k < vocab)
    if not bool(on.any()):
        return x
    k = top_k.long()
    kmax = int(k[on].max())
    kth = x.topk(kmax, dim=-1).values.gather(1, (k.clamp(1, kmax) - 1).unsqueeze(1))
    return x.masked_fill(on.unsqueeze(1) & (x < kth), float("-inf"))


def _top_p_mask(e: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    on = top_p < 1.0
    if not bool(on.any()):
        return e
    rows = on.nonzero().squeeze(1)
    sub = e[rows]
    target = top_p[rows].unsqueeze(1) * sub.sum(dim=-1, keepdim=True)
    # The nucleus is usually a few hundred tokens: sort the head, fall back to all.
    head = sub.topk(min(sub.shape[1], 256), dim=-1).values
    mass = head.cumsum(dim=-1)
    if not bool((mass[:, -1:] >= target).all()):
        head = sub.sort(dim=-1, descending=True).values
        mass = head.cumsum(dim=-1)
    cross = (mass < target).sum(dim=-1, keepdim=True).clamp(max=head.shape[1] - 1)
    threshold = torch.zeros_like(e[:, :1])
    threshold[rows] = head.gather(1, cross)
    return e.masked_fill(e < threshold, 0.0)


def _race(e: torch.Tensor, top: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """argmax_i e_i / Exp_i, hashing draws only for tokens that can still win.

    The row's top token (e = 1) scores 1/Exp_top, and no draw is below EXP_MIN,
    so a token with e < EXP_MIN / Exp_top can never beat it: skipping those is
    exact and leaves few tokens for a peaked distribution."""
    floor = 0.5 * EXP_MIN / exponentials(keys, top)
    rows, cols = (e >= floor.unsqueeze(1)).nonzero(as_tuple=True)
    scores = torch.zeros_like(e)
    scores[rows, cols] = e[rows, cols] / exponentials(keys[rows], cols)
    return scores.argmax(dim=-1)


def sample_ref(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Token ids int64 [B] for logits [B, V] of any float dtype (computed in fp32)."""
    x = logits.to(torch.float32, copy=True)
    apply_penalties_ref(x, batch)
    greedy = batch.columns["temperature"] <= 0
    best = x.argmax(dim=-1)
    if bool(greedy.all()):
        return best
    x = x / torch.where(greedy, 1.0, batch.columns["temperature"]).unsqueeze(1)
    x = _top_k_mask(x, batch.columns["top_k"])
    # Unnormalised probabilities relative to the max: min-p compares to them directly.
    peak, top = x.max(dim=-1, keepdim=True)
    e = torch.exp(x - peak)
    e = _top_p_mask(e, batch.columns["top_p"])
    e = e.masked_fill(e < batch.columns["min_p"].unsqueeze(1), 0.0)
    keys = row_keys(batch.columns["seed"], batch.columns["offset"])
    return torch.where(greedy, best, _race(e, top.squeeze(1), keys))
