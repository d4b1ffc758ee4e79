"""Tokenizers shared by the text tests: built once per session (the GGUF takes seconds)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from neuron.text import Tokenizer

# A SentencePiece-style vocabulary: specials, 256 byte-fallback pieces, then ▁-words with
# scores (higher merges first), as llama.cpp writes Llama 2 / TinyLlama files.
_WORDS = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "el", "ll", "lo", "he", "hel", "hell"]
_WORDS += ["hello", "▁hello", "▁w", "or", "wor", "orl", "world", "▁world", "!", "▁!"]


@pytest.fixture(scope="session")
def gguf_reader(demo_gguf: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(demo_gguf)


@pytest.fixture(scope="session")
def smollm(gguf_reader: gguf.GGUFReader) -> Tokenizer:
    return Tokenizer.from_gguf(gguf_reader)


@pytest.fixture(scope="session")
def hf_smollm(demo_gguf: Path):
    """transformers' own tokenizer for the demo GGUF: the reference."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(demo_gguf.parent), gguf_file=demo_gguf.name)


@pytest.fixture(scope="session")
def spm_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GGUF with a `llama` (SentencePiece) tokenizer and no tensors."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + _WORDS
    types = [2, 3, 3] + [6] * 256 + [1] * len(_WORDS)
    scores = [0.0] * 259 + [-float(i) for i in range(len(_WORDS))]
    path = tmp_path_factory.mktemp("spm") / "spm.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def spm(spm_gguf: Path) -> Tokenizer:
    return Tokenizer.from_gguf(gguf.GGUFReader(spm_gguf))
