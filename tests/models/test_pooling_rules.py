"""Where pooling rules come from (sentence-transformers folders, GGUF metadata, the
default, an override) and the FIM prompt layouts of each code-model family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuron.models.errors import ModelLoadError
from neuron.models.pooling import Pooling, folder_pooling, gguf_pooling, override
from neuron.text.fim import FORMATS, detect_fim
from neuron.text.tokenizer import Tokenizer
from tests.support.tiny_pooling import QWEN_FIM, make_fim_model


def _st_folder(root: Path, config: dict, normalize: bool) -> Path:
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    modules = [{"path": ["", "1_Pooling", "2_Normalize"][i],
                "type": f"sentence_transformers.models.{k}"} for i, k in enumerate(kinds)]  # fmt: skip
    (root / "1_Pooling").mkdir(parents=True)
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return root


def test_folder_rules(tmp_path: Path) -> None:
    assert folder_pooling(tmp_path) == Pooling("last", True, "default")
    cls = _st_folder(tmp_path / "a", {"pooling_mode_cls_token": True}, normalize=False)
    assert folder_pooling(cls) == Pooling("cls", False, "sentence-transformers")
    mean = _st_folder(tmp_path / "b", {"pooling_mode_mean_tokens": True}, normalize=True)
    assert folder_pooling(mean) == Pooling("mean", True, "sentence-transformers")
    most = _st_folder(tmp_path / "c", {"pooling_mode_max_tokens": True}, normalize=True)
    with pytest.raises(ModelLoadError, match="pooling_mode_max_tokens"):
        folder_pooling(most)


def test_gguf_rules_and_override() -> None:
    assert gguf_pooling({"qwen3.pooling_type": 1}, "qwen3") == Pooling("mean", True, "gguf")
    assert gguf_pooling({"llama.pooling_type": 3}, "llama").mode == "last"
    assert gguf_pooling({"llama.pooling_type": 0}, "llama").source == "default"
    assert gguf_pooling({}, "llama") == Pooling()
    assert override(Pooling("mean", False, "gguf"), "cls") == Pooling("cls", False, "override")
    assert override(Pooling(), None) == Pooling()
    with pytest.raises(ModelLoadError, match="unknown pooling"):
        override(Pooling(), "max")


def test_fim_layouts(models_root: Path) -> None:
    tokenizer = Tokenizer.from_hf_folder(make_fim_model(models_root))
    fmt = detect_fim(tokenizer)
    assert fmt is not None and fmt.family == "qwen2.5-coder"
    assert fmt.file_sep is None  # this vocabulary has no <|file_sep|>
    pre, suf, mid = QWEN_FIM
    extra = [{"filename": "a.py", "text": "x = 1\n"}]
    assert fmt.prompt("p", "s", extra) == f"x = 1\n{pre}p{suf}s{mid}"
    by_family = {f.family: f for f in FORMATS}  # CodeLlama: the plain spelling, listed last
    assert by_family["starcoder"].prompt("p", "s", extra) == (
        "<file_sep>a.py\nx = 1\n<fim_prefix>p<fim_suffix>s<fim_middle>"
    )
    assert by_family["codellama"].prompt("p", "s") == "<PRE> p <SUF>s <MID>"
    assert (
        by_family["deepseek-coder"].prompt("p", "s")
        == "<｜fim▁begin｜>p<｜fim▁hole｜>s<｜fim▁end｜>"
    )
    smollm2 = Tokenizer.from_hf_folder(models_root / "smollm2-tokenizer")
    assert detect_fim(smollm2) is None
