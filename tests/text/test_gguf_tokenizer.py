"""Tokenizers built from GGUF metadata equal the ones transformers builds from the same file."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from neuron.text.gguf_tokenizer import gguf_value, tokenizer_from_metadata

TEXTS = [
    "Hello world",
    "def f(x):\n    return x**2  # square\n\tpass\r\n",
    "a  b   c\t\td\n\n\n  e   ",
    "1234567 3.14159 x1y22 -0.5e10",
    "emoji 😀👍🏽 👨\u200d👩\u200d👧 🇫🇷",
    "中文字符测试，日本語のテキスト、한국어",
    "e\u0301 n\u0303 Z\u0324\u0354\u0367\u0311\u0313 क्षि",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>x<repo_name>y",
    "  leading and trailing  ",
    "'s 're 'VE don't I'M",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_demo_gguf_matches_transformers(smollm, hf_smollm, text: str) -> None:
    ids = smollm.encode(text)
    assert ids == hf_smollm.encode(text, add_special_tokens=False)
    assert smollm.decode(ids) == hf_smollm.decode(ids, skip_special_tokens=True)
    raw = smollm.decode(ids, skip_special_tokens=False)
    assert raw == hf_smollm.decode(ids, skip_special_tokens=False) == text


def test_demo_specials_are_whole_and_skipped(smollm) -> None:
    ids = smollm.encode("<|im_start|>assistant\nok<|im_end|>")
    assert ids[0] == smollm.token_to_id("<|im_start|>")
    assert ids[-1] == smollm.token_to_id("<|im_end|>")
    assert smollm.decode(ids) == "assistant\nok"
    assert smollm.vocab_size == 49152


@pytest.mark.parametrize("pre", ["gpt2", "default", "llama-bpe", "qwen2", "smollm"])
def test_pre_tokenizer_choice_matches_transformers(gguf_reader, pre: str) -> None:
    """SmolLM2's vocabulary under each split regex, against transformers' converter."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    keys = ("tokens", "token_type", "merges", "model")
    meta = {f"tokenizer.ggml.{k}": gguf_value(gguf_reader, f"tokenizer.ggml.{k}") for k in keys}
    meta["tokenizer.ggml.pre"] = pre
    ours = tokenizer_from_metadata(meta)
    reference, _ = convert_gguf_tokenizer(
        "llama",
        {
            "tokenizer_type": "gpt2",
            "pre_tokenizer_type": pre,
            "tokens": meta["tokenizer.ggml.tokens"],
            "token_type": meta["tokenizer.ggml.token_type"],
            "merges": meta["tokenizer.ggml.merges"],
        },
    )
    for text in TEXTS:
        assert ours.encode(text, add_special_tokens=False).ids == (
            reference.encode(text, add_special_tokens=False).ids
        ), text


def test_sentencepiece_gguf_matches_transformers(spm, spm_gguf: Path) -> None:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        convert_gguf_tokenizer,
        get_gguf_tokenizer,
    )

    architecture, tokenizer_dict, _ = get_gguf_tokenizer(str(spm_gguf))
    reference, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    texts = ["hello world", " hello", "hello  world!", "héllo ✓ 世界", "<s>hello</s> world", ""]
    texts.append("world hello\nhello")
    for text in texts:
        ids = spm.backend.encode(text, add_special_tokens=False).ids
        assert ids == reference.encode(text, add_special_tokens=False).ids, text
        assert spm.decode(ids) == reference.decode(ids, skip_special_tokens=True)
        assert spm.decode(ids, False) == reference.decode(ids, skip_special_tokens=False)
    # byte fallback reassembles characters the vocabulary lacks
    assert spm.decode(spm.encode("héllo ✓ 世界")) == "héllo ✓ 世界"


def test_unknown_tokenizer_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported GGUF tokenizer model 'bert'"):
        tokenizer_from_metadata({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["a"]})
    with pytest.raises(ValueError, match=r"no tokenizer\.ggml\.tokens"):
        tokenizer_from_metadata({"tokenizer.ggml.model": "gpt2"})


def test_gguf_value_reads_plain_python(gguf_reader: gguf.GGUFReader) -> None:
    assert gguf_value(gguf_reader, "tokenizer.ggml.model") == "gpt2"
    assert gguf_value(gguf_reader, "tokenizer.ggml.eos_token_id") == 2
    assert gguf_value(gguf_reader, "no.such.key", "fallback") == "fallback"
