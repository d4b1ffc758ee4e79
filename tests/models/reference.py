"""transformers, the numerical truth the decoder is held to (a test dependency only)."""

from __future__ import annotations

import torch


@torch.inference_mode()
def reference_logits(reference, ids: list[int]) -> torch.Tensor:
    """fp32 logits [len(ids), V] of a transformers model for one unpadded sequence."""
    return reference(torch.tensor([ids])).logits[0].float()


def reference_greedy(reference, prompt: list[int], max_new: int) -> list[int]:
    """transformers' greedy continuation, never stopping early at an EOS."""
    out = reference.generate(
        torch.tensor([prompt]),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[0, len(prompt) :].tolist()
