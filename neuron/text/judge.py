"""Qwen3-Reranker-style relevance: a decoder asked whether a document meets a query,
scored by its "yes" against its "no" at the answer's first position.

The prompt is the one the model card specifies (system judge instruction, then
`<Instruct>`/`<Query>`/`<Document>`, then an empty think block); the score is
softmax([no, yes])[yes], i.e. sigmoid(logit_yes - logit_no). Such a model is known
by its name, as llama.cpp's converter knows it (nothing in its files says so), and
by a vocabulary where "yes" and "no" are single tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from neuron.text.tokenizer import Tokenizer

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
    'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
    "<|im_end|>\n<|im_start|>user\n"
)
_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class YesNoJudge:
    yes_id: int
    no_id: int
    classify = False  # scored by two rows of the LM head, not a classifier

    @property
    def score_ids(self) -> tuple[int, int]:
        return self.yes_id, self.no_id

    def prompt_ids(
        self, tokenizer: Tokenizer, query: str, document: str, instruction: str | None = None
    ) -> list[int]:
        """The card's prompt, each part tokenized on its own as the card does."""
        body = (
            f"<Instruct>: {instruction or DEFAULT_INSTRUCTION}\n<Query>: {query}\n"
            f"<Document>: {document}"
        )
        return [
            *tokenizer.encode(_PREFIX, add_bos=False),
            *tokenizer.encode(body, add_bos=False),
            *tokenizer.encode(_SUFFIX, add_bos=False),
        ]

    @staticmethod
    def score(logits: list[float]) -> float:
        """P(yes) from the [yes, no] logits."""
        yes, no = logits
        return 1.0 / (1.0 + math.exp(no - yes))


@dataclass(frozen=True)
class PairClassifier:
    """A cross-encoder (sentence-transformers' CrossEncoder of a decoder): the query and
    the document as the tokenizer's pair, the classifier head's one logit, sigmoid."""

    score_ids = ()
    classify = True

    def prompt_ids(
        self, tokenizer: Tokenizer, query: str, document: str, instruction: str | None = None
    ) -> list[int]:
        return tokenizer.encode(query, post_process=True, pair=document)

    @staticmethod
    def score(logits: list[float]) -> float:
        return 1.0 / (1.0 + math.exp(-logits[0]))


Judge = YesNoJudge | PairClassifier


def detect_judge(source: Path, tokenizer: Tokenizer) -> YesNoJudge | None:
    """A yes/no judge when the model's name (its file, folder or repo) says reranker."""
    named = any("reranker" in part.lower() for part in source.parts[-3:])
    yes, no = tokenizer.token_to_id("yes"), tokenizer.token_to_id("no")
    if not named or yes is None or no is None:
        return None
    return YesNoJudge(yes, no)
