"""load_model on HF folders: sharded weights, generation defaults, and every bad input
ending in a ModelLoadError that names what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from neuron.models.errors import ModelLoadError
from neuron.models.loader import load_model
from tests.models.paged import PagedRunner


@pytest.fixture
def llama_copy(tiny_llama: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny llama folder that a test may damage."""
    return Path(shutil.copytree(tiny_llama, tmp_path / "tiny-llama"))


def load_error(spec: Path | str, **kwargs) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as err:
        load_model(str(spec), "cpu", torch.float32, **kwargs)
    return err.value


def test_loaded_model_fields(tiny_llama: Path, models_root: Path):
    loaded = load_model("tiny-llama", "cpu", "float32", models_dir=models_root)
    assert loaded.model_id == "tiny-llama"
    assert (loaded.format, loaded.source) == ("hf", tiny_llama)
    params = sum(p.numel() for p in loaded.model.parameters())
    assert loaded.nbytes == 4 * params
    assert loaded.chat_template and "im_start" in loaded.chat_template
    assert 2 in loaded.eos_token_ids


def test_generation_defaults_from_generation_config(llama_copy: Path):
    gen = json.loads((llama_copy / "generation_config.json").read_text())
    gen.update(temperature=0.6, top_p=0.9, top_k=None, do_sample=True)
    (llama_copy / "generation_config.json").write_text(json.dumps(gen))
    loaded = load_model(str(llama_copy), "cpu", torch.float32)
    assert loaded.generation_defaults == {"temperature": 0.6, "top_p": 0.9}


def test_sharded_weights_load_like_single_file(tiny_llama: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    hf = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32)
    hf.save_pretrained(str(sharded), max_shard_size="1MB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama / name, sharded / name)
    assert (sharded / "model.safetensors.index.json").exists()
    assert len(list(sharded.glob("*.safetensors"))) > 1
    ids = list(range(100, 140))
    single = PagedRunner(load_model(str(tiny_llama), "cpu", torch.float32).model)
    split = PagedRunner(load_model(str(sharded), "cpu", torch.float32).model)
    assert torch.equal(single.prefill({"a": ids}), split.prefill({"a": ids}))


def test_truncated_safetensors(llama_copy: Path):
    weights = llama_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    err = load_error(llama_copy)
    assert err.kind == "invalid"
    assert "model.safetensors" in err.message and "truncated" in err.message


def test_missing_shard_named_by_index(llama_copy: Path):
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001.safetensors"}}
    (llama_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    err = load_error(llama_copy)
    assert err.kind == "invalid" and "model-00001.safetensors" in err.message


def test_missing_tensor_is_named(llama_copy: Path):
    weights = load_file(str(llama_copy / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(llama_copy / "model.safetensors"))
    err = load_error(llama_copy)
    assert err.kind == "invalid" and "model.layers.1.mlp.up_proj.weight" in err.message


def test_unknown_architecture(llama_copy: Path):
    config = json.loads((llama_copy / "config.json").read_text())
    config.update(model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"])
    (llama_copy / "config.json").write_text(json.dumps(config))
    err = load_error(llama_copy)
    assert err.kind == "unsupported"
    assert "gpt_neox" in err.message and "qwen3" in err.message


@pytest.mark.parametrize("missing", ["config.json", "tokenizer.json"])
def test_missing_file_is_named(llama_copy: Path, missing: str):
    (llama_copy / missing).unlink()
    err = load_error(llama_copy)
    assert err.kind == "invalid" and missing in err.message


def test_unknown_model_id(tmp_path: Path):
    err = load_error("nobody/nothing", models_dir=tmp_path, hf_cache=tmp_path / "hub")
    assert err.kind == "not_found" and "nobody/nothing" in err.message


def test_gguf_with_unsupported_tensor_type(tmp_path: Path):
    path = tmp_path / "odd.IQ4_NL.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_context_length(128)
    writer.add_tensor("token_embd.weight", np.zeros((16, 32), dtype=np.float32))
    # IQ4_NL: blocks of 32 weights in 18 bytes.
    iq4 = np.zeros((32, 18), dtype=np.uint8)
    writer.add_tensor(
        "blk.0.attn_q.weight", iq4, raw_shape=(32, 18), raw_dtype=gguf.GGMLQuantizationType.IQ4_NL
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    err = load_error(path)
    assert err.kind == "unsupported"
    assert "blk.0.attn_q.weight" in err.message and "IQ4_NL" in err.message


def test_not_a_gguf_file(tmp_path: Path):
    path = tmp_path / "broken.Q4_0.gguf"
    path.write_bytes(b"GGUF" + bytes(40))
    err = load_error(path)
    assert err.kind == "invalid" and "broken.Q4_0.gguf" in err.message


def test_model_larger_than_memory_is_refused_before_allocating(llama_copy: Path):
    config = json.loads((llama_copy / "config.json").read_text())
    config.update(intermediate_size=50_000_000)  # ~77 GB of fp32 weights
    (llama_copy / "config.json").write_text(json.dumps(config))
    err = load_error(llama_copy)
    assert err.kind == "out_of_memory" and "GiB" in err.message


def test_malformed_tokenizer_is_named(llama_copy: Path):
    (llama_copy / "tokenizer.json").write_text('{"model": ')
    err = load_error(llama_copy)
    assert err.kind == "invalid" and "tokenizer.json" in err.message
