"""Incremental detokenisation for streamed replies.

Decoding token by token breaks two things that `tokenizers`' DecodeStream gets right:
a character whose UTF-8 bytes span several tokens (emoji, CJK under byte-level BPE or
byte fallback) is held until complete, and decoders that strip a leading space
(SentencePiece's ▁) see the prompt's last tokens as context, so the first reply token
keeps its space.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers.decoders import DecodeStream

from neuron.text.tokenizer import Tokenizer

# Enough prompt context to cover one whole character and the space before a word.
PROMPT_CONTEXT_TOKENS = 8


class StreamDetokenizer:
    """step(token_id) → the text that token completes ("" while a character is partial)."""

    def __init__(self, tokenizer: Tokenizer, prompt_ids: Sequence[int] = ()) -> None:
        self._backend = tokenizer.backend
        tail = list(prompt_ids[-PROMPT_CONTEXT_TOKENS:])
        self._stream = DecodeStream(ids=tail or None, skip_special_tokens=True)

    def step(self, token_id: int) -> str:
        return self._stream.step(self._backend, token_id) or ""
