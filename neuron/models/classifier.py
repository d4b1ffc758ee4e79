"""Sequence-classification checkpoints (`*ForSequenceClassification`, what a
sentence-transformers CrossEncoder of a decoder saves): the decoder plus a linear
`score` head on the last token's final hidden state, and no LM head.

The decoder loads as usual with its LM head tied to the embeddings (nothing reads it:
such a model only reranks); the head's weight is taken out of the checkpoint here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from neuron.models.config import ModelConfig
from neuron.models.errors import ModelLoadError

HEAD = "score.weight"


def is_classifier(raw: dict[str, Any]) -> bool:
    return any(str(c).endswith("ForSequenceClassification") for c in raw.get("architectures") or [])


def classifier_config(config: ModelConfig) -> ModelConfig:
    """The decoder's config with the (absent) LM head tied to the embeddings."""
    return dataclasses.replace(config, tie_word_embeddings=True)


class HeadTaker:
    """Passes a checkpoint's tensors on, keeping the classifier head's aside."""

    def __init__(self) -> None:
        self.head: torch.Tensor | None = None

    def filter(
        self, weights: Iterable[tuple[str, torch.Tensor]]
    ) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in weights:
            if name == HEAD:
                self.head = tensor
            elif name != "lm_head.weight":
                yield name, tensor

    def take(self, hidden_size: int) -> torch.Tensor:
        """The head [1, H]: one relevance logit (more labels do not rank)."""
        if self.head is None:
            raise ModelLoadError("invalid", f"a sequence-classification checkpoint lacks {HEAD}")
        if tuple(self.head.shape) != (1, hidden_size):
            raise ModelLoadError(
                "unsupported",
                f"a classifier head of shape {tuple(self.head.shape)} cannot rerank "
                f"(one label on the hidden size, (1, {hidden_size}), can)",
            )
        return self.head
