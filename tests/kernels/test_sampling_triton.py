"""Triton sampler against the reference: identical tokens (same cut-offs, same
random stream) and identical penalised logits.  The reference's distributions
are checked in test_sampling_ref, so equality carries them over."""

from __future__ import annotations

import pytest

VOCAB = 150  # several interpreter blocks of 64, the last one partial

CONFIGS = {
    "greedy": [{"temperature": 0.0, "seed": i} for i in range(4)],
    "top-k-1": [{"top_k": 1, "temperature": 0.3 + i, "seed": i} for i in range(4)],
    "temperature": [{"temperature": t, "seed": i} for i, t in enumerate([0.5, 1.0, 1.0, 2.0])],
    "top-k": [{"top_k": k, "seed": 10 + k, "offset": k} for k in (2, 5, 20, 149)],
    "top-p": [{"top_p": p, "seed": 20 + i} for i, p in enumerate([0.3, 0.6, 0.9, 0.99])],
    "min-p": [{"min_p": p, "seed": 30 + i} for i, p in enumerate([0.01, 0.1, 0.4, 0.9])],
    "mixed": [
        {"temperature": 0.0},
        {"temperature": 0.8, "top_k": 8, "top_p": 0.7, "min_p": 0.05, "seed": 3},
        {"temperature": 1.2, "top_p": 0.5, "seed": -7, "offset": 2**40},
        {"top_k": 30, "min_p": 0.2, "seed": 2**62},
    ],
    "penalties": [
        {"temperature": 0.0, "repetition_penalty": 1.5, "prompt_ids": [0, 3, 7],
         "output_ids": [3, 3], "presence_penalty": 0.5},
        {"repetition_penalty": 1.2, "frequency_penalty": 0.3, "prompt_ids": [1],
         "output_ids": [5, 5, 9, 140], "seed": 4},
        {"top_k": 4, "repetition_penalty": 0.7, "prompt_ids": list(range(0, 150, 3))},
        {},
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sampling_matches_reference(triton_run, name: str) -> None:
    triton_run("sampling", rows=CONFIGS[name], vocab=VOCAB)


def test_low_precision_logits(triton_run) -> None:
    triton_run("sampling", rows=CONFIGS["mixed"], vocab=VOCAB, dtype="float16")


def test_tied_logits_keep_every_tie(triton_run) -> None:
    """spread 0 makes all logits equal: top-k/top-p cut-offs must keep the ties."""
    rows = [{"top_k": 3, "seed": 1}, {"top_p": 0.2, "seed": 2}, {"temperature": 0.0}]
    triton_run("sampling", rows=rows, vocab=VOCAB, spread=0.0)


def test_penalties_match_reference(triton_run) -> None:
    triton_run("penalties", rows=CONFIGS["penalties"], vocab=VOCAB)
