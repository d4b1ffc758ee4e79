"""Streamed decoding equals whole decoding, whatever the token boundaries."""

from __future__ import annotations

import pytest

from neuron.text import StreamDetokenizer, Tokenizer

TEXTS = [
    "Weather: ☀️ 25°C, 🌧️ later 👨\u200d👩\u200d👧\u200d👦!",
    "中文字符测试，日本語のテキスト、한국어 문장",
    "Cafe\u0301 n\u0303o Z\u0324\u0354\u0367\u0311\u0313 क्षत्रिय",
    "plain ascii, code: `x = [i**2 for i in range(10)]`\n",
]


def _stream(tok: Tokenizer, ids: list[int], prompt: list[int] = ()) -> list[str]:
    detok = StreamDetokenizer(tok, prompt)
    return [detok.step(i) for i in ids]


@pytest.mark.parametrize("text", TEXTS)
def test_token_by_token_equals_decode(smollm: Tokenizer, text: str) -> None:
    ids = smollm.encode(text)
    chunks = _stream(smollm, ids)
    assert "".join(chunks) == smollm.decode(ids) == text
    assert not any("\ufffd" in c for c in chunks)


def test_split_characters_are_held_until_complete(smollm: Tokenizer) -> None:
    """The emoji are cut across byte-level tokens: their first pieces yield nothing."""
    ids = smollm.encode("🌧️👨\u200d👩")
    assert len(ids) > 4
    chunks = _stream(smollm, ids)
    assert "" in chunks
    assert "".join(chunks) == "🌧️👨\u200d👩"


@pytest.mark.parametrize("text", TEXTS)
def test_every_prompt_split(smollm: Tokenizer, text: str) -> None:
    """Seeded with a prompt ending at any token, the reply streams exactly its own text."""
    ids = smollm.encode(text)
    for k in range(1, len(ids)):
        prompt_text = smollm.decode(ids[:k])
        if "\ufffd" in prompt_text:  # the prompt cannot end inside a character
            continue
        assert "".join(_stream(smollm, ids[k:], ids[:k])) == text[len(prompt_text) :], k


def test_special_tokens_are_skipped(smollm: Tokenizer) -> None:
    ids = smollm.encode("<|im_start|>assistant\nhi<|im_end|>")
    assert "".join(_stream(smollm, ids)) == "assistant\nhi"


def test_prompt_context_keeps_the_leading_space(spm: Tokenizer) -> None:
    """SentencePiece strips the space of a text's first ▁word; a reply's first word
    follows the prompt, so it must keep it."""
    prompt = spm.encode("hello")
    reply = spm.encode(" world", add_bos=False)
    assert spm.decode(reply) == "world"
    assert "".join(_stream(spm, reply, prompt)) == " world"
    assert spm.decode(prompt + reply) == "hello world"
