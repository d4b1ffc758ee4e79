"""Per-sequence limits on the next token: a grammar matcher and/or a logit bias.

A constrained sequence owns one xgrammar matcher, advanced here on the device thread
as each of its tokens is accepted. Before sampling, every constrained row of the
batch gets its allowed-token bitmask (filled by the matchers, applied by xgrammar's
kernel: a CPU loop, or Triton on CUDA) and its bias (`neuron.engine.sampler` applies
them); rows without constraints are not touched, so a batch mixing both samples the
free rows exactly as it would alone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch


class Constraint:
    """One sequence's matcher (None: no grammar) and logit bias (empty: none)."""

    def __init__(self, matcher: Any | None, bias: dict[int, float], vocab_size: int = 0) -> None:
        self.matcher = matcher
        self.vocab_size = vocab_size  # the grammar's vocabulary, for a one-row mask
        self.bias_ids = list(bias)
        self.bias_values = list(bias.values())
        self._bias_tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self._next_mask: torch.Tensor | None = None  # `closed`'s one-row bitmask

    @classmethod
    def build(
        cls, grammar: Any | None, prefix: str, bias: dict[int, float], stop_ids: Iterable[int]
    ) -> Constraint | None:
        """The constraint of a new sequence; None when it has neither grammar nor bias.

        `prefix` is reply text already written into the prompt (a forced call's
        opening): the matcher reads it first. ValueError if the grammar rejects it.
        """
        if grammar is None and not bias:
            return None
        matcher, vocab_size = None, 0
        if grammar is not None:
            import xgrammar

            matcher = xgrammar.GrammarMatcher(grammar, override_stop_tokens=sorted(stop_ids))
            if prefix and not matcher.accept_string(prefix):
                raise ValueError(f"the grammar does not allow the reply to begin {prefix!r}")
            vocab_size = grammar.tokenizer_info.vocab_size
        return cls(matcher, bias, vocab_size)

    def accept(self, token_id: int) -> bool:
        """Advance the matcher by a sampled token; False if the grammar rejects it."""
        return self.matcher is None or self.matcher.accept_token(token_id)

    @property
    def finished(self) -> bool:
        """The grammar accepted a stop token: the document is complete."""
        return self.matcher is not None and self.matcher.is_terminated()

    @property
    def closed(self) -> bool:
        """The document is complete and only a stop token may follow it.

        The reply ends here rather than spend a decode step sampling the one token left
        (and a document that closes on its `max_tokens`-th token finishes "stop").
        """
        matcher = self.matcher
        if matcher is None or matcher.is_terminated() or not matcher.is_completed():
            return False
        if self._next_mask is None:  # a completed document: rare, except in free text
            import xgrammar

            self._next_mask = xgrammar.allocate_token_bitmask(1, self.vocab_size)
        matcher.fill_next_token_bitmask(self._next_mask)  # overwrites the whole row
        others = _other_tokens(self.vocab_size, tuple(sorted(matcher.stop_token_ids)))
        return not bool((self._next_mask[0] & others).any())

    def add_bias(self, logits: torch.Tensor, row: int) -> None:
        if self._bias_tensors is None:
            ids = torch.tensor(self.bias_ids, dtype=torch.int64, device=logits.device)
            values = torch.tensor(self.bias_values, dtype=logits.dtype, device=logits.device)
            self._bias_tensors = ids, values
        ids, values = self._bias_tensors
        logits[row].index_add_(0, ids, values)


@functools.lru_cache(maxsize=16)
def _other_tokens(vocab: int, stop_ids: tuple[int, ...]) -> torch.Tensor:
    """A bitmask row (xgrammar's layout: token 32w + b is bit b of word w) holding every
    token of the vocabulary but the stop tokens: one AND with a mask tells whether it
    allows anything else."""
    words = (vocab + 31) // 32
    bits = torch.zeros(words * 32, dtype=torch.int64)
    bits[:vocab] = 1
    bits[list(stop_ids)] = 0
    packed = (bits.view(words, 32) << torch.arange(32)).sum(1)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)
