"""Fill-in-the-middle prompts, from the FIM tokens a code model's tokenizer carries.

Each family marks the code before the cursor, the code after it and where the middle
goes with its own three tokens; the prompt is prefix-suffix-middle (PSM), the order
every one of them was trained on. Other files of the project (llama.cpp's
`input_extra`) go first, each behind the family's file separator where it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from neuron.text.tokenizer import Tokenizer


@dataclass(frozen=True)
class FimFormat:
    """One family's FIM tokens and how its prompt is laid out."""

    family: str
    prefix: str
    suffix: str
    middle: str
    file_sep: str | None = None  # written before each extra file, then its name and a newline
    spaced: bool = False  # CodeLlama: "<PRE> prefix <SUF>suffix <MID>"

    def prompt(self, prefix: str, suffix: str, extra: Sequence[Mapping[str, Any]] = ()) -> str:
        """The prompt text (the tokenizer reads its special tokens as tokens)."""
        files = "".join(self._file(chunk) for chunk in extra)
        if self.spaced:
            return f"{files}{self.prefix} {prefix} {self.suffix}{suffix} {self.middle}"
        return f"{files}{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"

    def _file(self, chunk: Mapping[str, Any]) -> str:
        name, text = str(chunk.get("filename") or ""), str(chunk.get("text") or "")
        if self.file_sep is None:
            return text
        return f"{self.file_sep}{name}\n{text}"

    def public(self) -> dict[str, str]:
        return {"family": self.family, "prefix": self.prefix, "suffix": self.suffix,
                "middle": self.middle}  # fmt: skip


FORMATS = (
    FimFormat(
        "qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"
    ),
    FimFormat("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"),
    # CodeLlama's Hugging Face vocabulary spells them with the SentencePiece space.
    FimFormat("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>"),
    FimFormat("codellama", "<PRE>", "<SUF>", "<MID>", spaced=True),
    FimFormat("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
)


def detect_fim(tokenizer: Tokenizer) -> FimFormat | None:
    """The first family whose three tokens are all single tokens of this vocabulary."""
    for fmt in FORMATS:
        if all(tokenizer.token_to_id(t) is not None for t in (fmt.prefix, fmt.suffix, fmt.middle)):
            sep = fmt.file_sep
            if sep is not None and tokenizer.token_to_id(sep) is None:
                return FimFormat(fmt.family, fmt.prefix, fmt.suffix, fmt.middle, None, fmt.spaced)
            return fmt
    return None


def no_fim_reason(model: str) -> str:
    """Why a model without FIM tokens cannot take a suffix (the 400's message)."""
    names = ", ".join(f"{f.prefix}/{f.suffix}/{f.middle}" for f in FORMATS)
    return (
        f"model {model!r} cannot fill in the middle: its tokenizer has no FIM tokens "
        f"(looked for {names})"
    )
