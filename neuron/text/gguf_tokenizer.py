"""Build a `tokenizers.Tokenizer` from a GGUF file's metadata.

A GGUF carries no tokenizer.json: llama.cpp stores the vocabulary, merges, scores and
token types under `tokenizer.ggml.*`. Two vocabulary families cover the Llama family:
`gpt2` (byte-level BPE, split by the regex named in `tokenizer.ggml.pre`) and `llama`
(SentencePiece-style BPE over ▁-prefixed pieces with byte fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

# llama.cpp token types (gguf.TokenType): 2 unknown, 3 control, 4 user defined.
_UNKNOWN, _CONTROL, _USER_DEFINED = 2, 3, 4

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# `tokenizer.ggml.pre` → the split regex the merges were learned with (llama.cpp's names).
_SPLITS = {
    "llama-bpe": _LLAMA3_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}
# Vocabularies trained with each digit on its own (StarCoder lineage, SmolLM).
_DIGIT_SPLIT = frozenset({"smollm", "starcoder", "refact", "codeshell"})


def gguf_value(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    """A metadata value as plain Python (str, int, float, bool or list)."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()


@cache
def _byte_spelling() -> dict[int, str]:
    """GPT-2's byte → printable character map (the spelling of byte-level vocabularies)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    spelling = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in spelling:
            spelling[b] = chr(256 + extra)
            extra += 1
    return spelling


def _byte_level(tokens: list[str], types: list[int], merges: list[str], pre: str) -> Tokenizer:
    spelling = _byte_spelling()
    alphabet = set(spelling.values())

    def spelled(token: str, token_type: int) -> str:
        # Some converters store plain tokens as raw UTF-8; added tokens stay as typed.
        if set(token) <= alphabet or token_type in (_CONTROL, _USER_DEFINED):
            return token
        return "".join(spelling[b] for b in token.encode("utf-8"))

    vocab = {spelled(t, k): i for i, (t, k) in enumerate(zip(tokens, types, strict=True))}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    split = _SPLITS.get(pre)
    if split is not None:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    elif pre in _DIGIT_SPLIT:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    else:  # "gpt2", "default" and unknown names: GPT-2's own regex
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def _merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """Recover BPE merges from SentencePiece scores: every split of a token into two
    known pieces is a merge, ranked by the token's score (best first)."""
    vocab = {t: i for i, t in enumerate(tokens)}
    found: list[tuple[str, str, float]] = []
    for token, score in zip(tokens, scores, strict=True):
        local = [
            (token[:k], token[k:], score)
            for k in range(1, len(token))
            if token[:k] in vocab and token[k:] in vocab
        ]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        found.extend(local)
    found.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in found]


def _sentencepiece(
    tokens: list[str], scores: list[float], merges: list[str] | None, unk: str | None, prefix: bool
) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = (
        [tuple(m.split(" ", 1)) for m in merges] if merges else _merges_from_scores(tokens, scores)
    )
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=pairs, unk_token=unk, fuse_unk=True, byte_fallback=True)
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if prefix else "never", split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tok.decoder = decoders.Sequence(steps)
    return tok


def _register_added(tok: Tokenizer, tokens: list[str], types: list[int], byte_level: bool) -> None:
    """Control (and unknown) tokens become special added tokens, user-defined ones plain
    added tokens, so text containing them is matched whole instead of being cut up.

    Their vocabulary entries keep the file's spelling, so registering reuses their ids."""
    special = [
        AddedToken(t, normalized=False, special=True)
        for t, k in zip(tokens, types, strict=True)
        if k == _CONTROL or (k == _UNKNOWN and not byte_level)
    ]
    plain = [
        AddedToken(t, normalized=False, special=False)
        for t, k in zip(tokens, types, strict=True)
        if k == _USER_DEFINED
    ]
    if special:
        tok.add_special_tokens(special)
    if plain:
        tok.add_tokens(plain)


def tokenizer_from_gguf(reader: gguf.GGUFReader) -> Tokenizer:
    """The GGUF's tokenizer, equal to what transformers builds from the same file."""
    keys = [k for k in reader.fields if k.startswith("tokenizer.ggml.")]
    return tokenizer_from_metadata({k: gguf_value(reader, k) for k in keys})


def tokenizer_from_metadata(meta: Mapping[str, Any]) -> Tokenizer:
    """Build from `tokenizer.ggml.*` values (keys as llama.cpp names them)."""
    kind = meta.get("tokenizer.ggml.model")
    tokens: list[str] | None = meta.get("tokenizer.ggml.tokens")
    if not tokens:
        raise ValueError("the GGUF file has no tokenizer.ggml.tokens")
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = meta.get("tokenizer.ggml.merges")
    if len(types) != len(tokens):
        raise ValueError("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length")
    if kind == "gpt2":
        pre = meta.get("tokenizer.ggml.pre", "default")
        tok = _byte_level(tokens, types, merges or [], pre)
    elif kind == "llama":
        scores = meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
        if len(scores) != len(tokens):
            raise ValueError("tokenizer.ggml.scores and tokenizer.ggml.tokens differ in length")
        unk_id = meta.get("tokenizer.ggml.unknown_token_id")
        prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        unk = tokens[unk_id] if unk_id is not None else None
        tok = _sentencepiece(tokens, scores, merges, unk, prefix)
    else:
        raise ValueError(f"unsupported GGUF tokenizer model {kind!r} (supported: 'gpt2', 'llama')")
    _register_added(tok, tokens, types, byte_level=kind == "gpt2")
    return tok
