"""From logits to next tokens (and their log-probabilities) for a batch of sequences.

The kernels do the sampling; this module turns each sequence's settings into a
`SamplingBatch` row, after biasing and masking the rows a `Constraint` limits. Rows without penalties send no token ids at all, so the
common case does no per-token Python work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import neuron_kernels as kernels
from neuron.engine.sequence import Sequence
from neuron_kernels.sampling import SamplingBatch, SamplingRow, column_values


@dataclass
class SampledLogprobs:
    """Log-probabilities under the model's raw distribution (before any sampling setting)."""

    logprob: float
    top: list[tuple[int, float]]


def sampling_row(seq: Sequence) -> SamplingRow:
    params = seq.params
    prompt, output = (), ()
    if params.uses_penalties:
        prompt = seq.token_ids[: seq.num_prompt_tokens]
        output = seq.token_ids[seq.num_prompt_tokens :]
    return SamplingRow(
        **params.knobs(),
        prompt_ids=prompt,
        output_ids=output,
        seed=seq.seed,
        # Draws are counted per generated token, so a recomputed or re-batched
        # sequence draws exactly the numbers it would have drawn anyway.
        offset=seq.num_completion_tokens,
    )


def sampling_columns(seqs: list[Sequence], rows: int) -> dict[str, list]:
    """Every sampling column of the batch, padded to `rows` with greedy copies of row 0
    (a padded row draws nothing and changes nothing)."""
    first = sampling_row(seqs[0])
    first.temperature = 0.0
    return column_values([sampling_row(s) for s in seqs] + [first] * (rows - len(seqs)))


def sample(
    logits: torch.Tensor, seqs: list[Sequence]
) -> tuple[list[int], list[SampledLogprobs | None]]:
    """Next token of each row of logits [B, V] (fp32), with logprobs where asked."""
    wanted = [i for i, s in enumerate(seqs) if s.params.logprobs is not None]
    if wanted:  # taken first: the distribution as the model gave it, before any sampling step
        rows = torch.tensor(wanted, device=logits.device)
        lp = torch.log_softmax(logits.index_select(0, rows).float(), dim=-1)
    apply_constraints(logits, seqs)  # grammar masks and logit biases, in place
    batch = SamplingBatch.from_rows([sampling_row(s) for s in seqs], device=logits.device)
    token_ids = kernels.sample(logits, batch)
    logprobs: list[SampledLogprobs | None] = [None] * len(seqs)
    if wanted:
        chosen = lp.gather(1, token_ids.index_select(0, rows).unsqueeze(1)).squeeze(1).tolist()
        most = max(seqs[i].params.logprobs or 0 for i in wanted)
        top_vals, top_ids = (t.tolist() for t in lp.topk(most, dim=-1))
        for j, i in enumerate(wanted):
            n = seqs[i].params.logprobs or 0
            top = list(zip(top_ids[j][:n], top_vals[j][:n], strict=True))
            logprobs[i] = SampledLogprobs(chosen[j], top)
    return token_ids.tolist(), logprobs


def apply_constraints(logits: torch.Tensor, seqs: list[Sequence]) -> None:
    """Bias and mask the logits [B, V] of the constrained rows, in place."""
    rows = [(i, s.constraint) for i, s in enumerate(seqs) if s.constraint is not None]
    if not rows:
        return
    grammar_rows: list[int] = []
    for i, constraint in rows:
        if constraint.bias_ids:
            constraint.add_bias(logits, i)
        if constraint.matcher is not None:
            grammar_rows.append(i)
    if grammar_rows:
        import xgrammar

        vocab = logits.shape[-1]
        bitmask = xgrammar.allocate_token_bitmask(len(seqs), vocab)
        for i in grammar_rows:
            seqs[i].constraint.matcher.fill_next_token_bitmask(bitmask, i)
        if logits.device.type != "cpu":
            bitmask = bitmask.to(logits.device, non_blocking=True)
        xgrammar.apply_token_bitmask_inplace(
            logits, bitmask, vocab_size=vocab, indices=grammar_rows
        )
