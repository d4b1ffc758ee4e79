"""Tokenizer facts from GGUF metadata and from Hugging Face folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import processors

from neuron.text import Tokenizer

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_from_demo_gguf(smollm: Tokenizer, gguf_reader) -> None:
    assert smollm.bos_token == "<|im_start|>"
    assert smollm.eos_token == "<|im_end|>"
    assert smollm.add_bos is False  # tokenizer.ggml.add_bos_token = false
    assert smollm.token_to_id("<|im_end|>") in smollm.eos_token_ids
    assert smollm.chat_template == gguf_reader.fields["tokenizer.chat_template"].contents()
    assert smollm.encode("hi") == [smollm.token_to_id("hi")]


def test_sentencepiece_gguf_adds_bos_once(spm: Tokenizer) -> None:
    assert spm.add_bos  # llama vocabularies default to BOS, as llama.cpp does
    ids = spm.encode("hello world")
    assert ids[0] == spm.bos_token_id == 1
    written = spm.encode("<s>hello world")  # a template that writes BOS itself
    assert written[0] == 1 and written.count(1) == 1
    assert spm.encode("hello world", add_bos=False) == ids[1:]
    assert spm.eos_token_ids == frozenset({2})


@pytest.fixture(scope="module")
def hf_folder(hf_smollm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf-tok")
    hf_smollm.save_pretrained(str(folder))
    return folder


def _variant(src: Path, dst: Path, **config) -> Path:
    """A copy of the folder with tokenizer_config keys changed and side files added."""
    dst.mkdir()
    (dst / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    tok_config = json.loads((src / "tokenizer_config.json").read_text())
    for name in ("generation_config.json", "config.json"):
        if name in config:
            (dst / name).write_text(json.dumps(config.pop(name)))
    if "chat_template.jinja" in config:
        (dst / "chat_template.jinja").write_text(config.pop("chat_template.jinja"))
    tok_config.update(config)
    (dst / "tokenizer_config.json").write_text(json.dumps(tok_config))
    return dst


def test_from_hf_folder_matches_transformers(hf_folder: Path, hf_smollm) -> None:
    tok = Tokenizer.from_hf_folder(hf_folder)
    text = "<|im_start|>user\nHow many r's in 'strawberry'? 😀<|im_end|>\n"
    assert tok.encode(text) == hf_smollm.encode(text, add_special_tokens=False)
    assert tok.chat_template == hf_smollm.chat_template
    assert (tok.bos_token, tok.eos_token, tok.add_bos) == ("<|im_start|>", "<|im_end|>", False)


def test_eos_ids_gather_every_config(hf_folder: Path, tmp_path: Path) -> None:
    folder = _variant(
        hf_folder,
        tmp_path / "eos",
        eos_token={"content": "<|endoftext|>", "special": True},  # AddedToken form
        **{"generation_config.json": {"eos_token_id": [7, 8]}, "config.json": {"eos_token_id": 9}},
        **{"chat_template.jinja": CHATML},
    )
    tok = Tokenizer.from_hf_folder(folder)
    assert tok.eos_token == "<|endoftext|>"
    # 0 = the eos_token, 7-9 from the configs, 2 = <|im_end|>: the template's turn end
    assert tok.eos_token_ids == frozenset({0, 2, 7, 8, 9})


def test_turn_terminator_is_the_token_after_the_reply(hf_folder: Path, tmp_path: Path) -> None:
    """<file_sep> precedes each message (like Llama 3's <|end_header_id|>): not an end."""
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}<file_sep>{{ m.content }}<gh_stars>"
        "{% endfor %}"
    )
    folder = _variant(hf_folder, tmp_path / "turn", chat_template=template)
    tok = Tokenizer.from_hf_folder(folder)
    assert tok.eos_token_ids == frozenset({tok.token_to_id("<|im_end|>"), 7})
    assert tok.token_to_id("<gh_stars>") == 7


def test_named_templates_pick_default(hf_folder: Path, tmp_path: Path) -> None:
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": CHATML}]
    folder = _variant(hf_folder, tmp_path / "named", chat_template=named)
    assert Tokenizer.from_hf_folder(folder).chat_template == CHATML


def test_chat_template_file_wins(hf_folder: Path, tmp_path: Path) -> None:
    folder = _variant(
        hf_folder, tmp_path / "file", chat_template="old", **{"chat_template.jinja": CHATML}
    )
    assert Tokenizer.from_hf_folder(folder).chat_template == CHATML


def test_bos_flag_and_post_processor(hf_folder: Path, tmp_path: Path) -> None:
    flagged = Tokenizer.from_hf_folder(_variant(hf_folder, tmp_path / "flag", add_bos_token=True))
    assert flagged.encode("hi") == [1, flagged.token_to_id("hi")]
    assert flagged.encode("<|im_start|>hi") == [1, flagged.token_to_id("hi")]

    # No flag, but a post-processor that prepends BOS (Llama 3 style): BOS is on.
    folder = _variant(hf_folder, tmp_path / "post")
    backend = Tokenizer.from_hf_folder(folder).backend
    backend.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)]
    )
    backend.save(str(folder / "tokenizer.json"))
    tok = Tokenizer.from_hf_folder(folder)
    assert tok.add_bos
    assert tok.encode("hi") == [1, tok.token_to_id("hi")]


def test_missing_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        Tokenizer.from_hf_folder(tmp_path)
